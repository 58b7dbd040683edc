"""Kubernetes name rules used by the node's settings: label keys and values, taints, DNS names,
IP addresses and CIDRs. Pure checks raising ValueError with the bad text; no setting paths here.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

# Labels a kubelet may set on its own Node in the kubernetes.io / k8s.io namespaces
# (upstream k8s.io/kubelet/pkg/apis: KubeletLabels and KubeletLabelNamespaces).
_KUBELET_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
    }
)
_KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


@dataclass(frozen=True)
class Taint:
    """A taint the node registers with (core/v1 Taint without timeAdded)."""

    key: str
    """Taint key: a qualified name, like a label key."""
    effect: str
    """NoSchedule, PreferNoSchedule or NoExecute."""
    value: str = ""
    """Taint value: like a label value, may be empty."""


def check_dns_subdomain(text: str) -> None:
    """A DNS-1123 subdomain: at most 253 chars, lower-case alphanumeric, '-' and '.'."""
    if len(text) > 253 or not _DNS_SUBDOMAIN.fullmatch(text):
        raise ValueError(
            f'invalid DNS subdomain "{text}": must be at most 253 lower-case alphanumeric '
            "characters, '-' or '.', starting and ending with an alphanumeric character"
        )


def check_label_key(key: str) -> None:
    """A qualified name: an optional DNS-subdomain prefix and '/', then a name of at most 63
    characters [A-Za-z0-9._-] starting and ending alphanumeric."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        raise ValueError(f'invalid label key "{key}": prefix part must be non-empty')
    if prefix:
        try:
            check_dns_subdomain(prefix)
        except ValueError as e:
            raise ValueError(f'invalid label key "{key}": prefix: {e}') from None
    if len(name) > 63 or not _NAME.fullmatch(name):
        raise ValueError(
            f'invalid label key "{key}": name part must be at most 63 characters [A-Za-z0-9._-], '
            "starting and ending with an alphanumeric character"
        )


def check_label_value(value: str) -> None:
    """Empty, or at most 63 characters [A-Za-z0-9._-] starting and ending alphanumeric."""
    if value and (len(value) > 63 or not _NAME.fullmatch(value)):
        raise ValueError(
            f'invalid label value "{value}": must be empty or at most 63 characters '
            "[A-Za-z0-9._-], starting and ending with an alphanumeric character"
        )


def _in_namespace(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def check_kubelet_label(key: str) -> None:
    """Refuse labels in the kubernetes.io and k8s.io namespaces that a kubelet may not set on
    its own Node (the NodeRestriction admission plugin would reject them anyway)."""
    namespace = key.rpartition("/")[0]
    if key in _KUBELET_LABELS:
        return
    if any(_in_namespace(namespace, ns) for ns in _KUBELET_LABEL_NAMESPACES):
        return
    if _in_namespace(namespace, "kubernetes.io") or _in_namespace(namespace, "k8s.io"):
        raise ValueError(
            f'label "{key}" is in the kubernetes.io/k8s.io namespace, which a kubelet may only '
            "use for node.kubernetes.io/*, kubelet.kubernetes.io/* and the well-known labels"
        )


def parse_labels(text: str) -> dict[str, str]:
    """Parse "k=v,k2=v2" (the --node-labels form, upstream's ConfigurationMap: a key alone has
    an empty value) into a dict, checking every key and value."""
    labels: dict[str, str] = {}
    for item in text.split(","):
        if not item:
            continue
        key, _, value = item.partition("=")
        key, value = key.strip(), value.strip()
        check_label_key(key)
        check_label_value(value)
        check_kubelet_label(key)
        labels[key] = value
    return labels


def check_taint(taint: Taint) -> None:
    """The key is a qualified name, the value a label value, the effect one of TAINT_EFFECTS."""
    try:
        check_label_key(taint.key)
    except ValueError as e:
        raise ValueError(f"invalid taint key: {e}") from None
    check_label_value(taint.value)
    if taint.effect not in TAINT_EFFECTS:
        raise ValueError(
            f'invalid taint effect "{taint.effect}": must be one of {", ".join(TAINT_EFFECTS)}'
        )


def parse_taint(text: str) -> Taint:
    """Parse "key=value:Effect" or "key:Effect" (upstream's taint spec) into a checked Taint."""
    key_value, colon, effect = text.rpartition(":")
    if not colon or not key_value:
        raise ValueError(f'invalid taint spec "{text}": want key=value:Effect or key:Effect')
    key, _, value = key_value.partition("=")
    if "=" in value:
        raise ValueError(f'invalid taint spec "{text}": more than one "="')
    taint = Taint(key=key, value=value, effect=effect)
    check_taint(taint)
    return taint


def parse_taints(text: str) -> tuple[Taint, ...]:
    """Parse the comma-separated --register-with-taints form."""
    return tuple(parse_taint(item.strip()) for item in text.split(",") if item.strip())


def check_ip(text: str) -> str:
    """An IPv4 or IPv6 address; returns its canonical text form."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f'invalid IP address "{text}"') from None


def check_cidr(text: str) -> str:
    """An IPv4 or IPv6 CIDR ("10.244.1.0/24"); host bits may be set, as with Go's ParseCIDR."""
    if "/" not in text:
        raise ValueError(f'invalid CIDR "{text}": missing "/prefix-length"')
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f'invalid CIDR "{text}"') from None
    return text


def parse_node_ips(text: str) -> tuple[str, ...]:
    """Parse --node-ip: one address, or two of different families (dual-stack), comma-separated."""
    ips = tuple(check_ip(item.strip()) for item in text.split(","))
    if len(ips) > 2:
        raise ValueError(f'"{text}": at most two addresses (one per IP family)')
    if (
        len(ips) == 2
        and ipaddress.ip_address(ips[0]).version == ipaddress.ip_address(ips[1]).version
    ):
        raise ValueError(f'dual-stack "{text}" must include one IPv4 and one IPv6 address')
    return ips


def check_endpoint(text: str) -> str:
    """A CRI endpoint: unix:///absolute/path (an absolute path alone is read as unix://)."""
    if text.startswith("/"):
        return "unix://" + text
    if not text.startswith("unix:///"):
        raise ValueError(f'invalid endpoint "{text}": want unix:///path/to/socket')
    return text
