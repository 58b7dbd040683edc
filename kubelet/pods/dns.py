"""Pod DNS as upstream's kubelet computes it: the sandbox's resolv.conf (CRI DNSConfig) from
dnsPolicy, dnsConfig, clusterDNS, clusterDomain and the node's resolv.conf; hostname and FQDN.
Reads the typed Pod only.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubelet.pods.model import Pod, PodSpecError
from kubelet.runtime.criconfig import DNSSettings

log = logging.getLogger(__name__)

# Upstream's limits (pkg/apis/core/validation, from libc's resolver).
MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_LINE_CHARS = 2048
MAX_SEARCH_PATH_LEN = 253
MAX_RESOLV_CONF_BYTES = 10 << 20
DEFAULT_OPTIONS = ("ndots:5",)
HOSTNAME_MAX = 63
FQDN_MAX = 64

CLUSTER_FIRST, CLUSTER_FIRST_WITH_HOST_NET = "ClusterFirst", "ClusterFirstWithHostNet"
DEFAULT, NONE = "Default", "None"

# Event reasons (upstream names).
MISSING_CLUSTER_DNS = "MissingClusterDNS"
DNS_CONFIG_FORMING = "DNSConfigForming"

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_RE = re.compile(_DNS_LABEL)
_SUBDOMAIN_RE = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")


class ResolvConfError(ValueError):
    """The node's resolv.conf cannot be read or parsed; the sandbox cannot be configured."""


@dataclass(frozen=True)
class ResolvConf:
    """What a resolv.conf says: nameservers accumulate, the last search line wins, options merge."""

    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class DNSWarning:
    """A Warning event for the pod (upstream reason and message)."""

    reason: str
    message: str


@dataclass(frozen=True)
class PodDNS:
    """The sandbox's DNS settings and the warnings computing them raised."""

    settings: DNSSettings
    warnings: tuple[DNSWarning, ...] = ()


@dataclass(frozen=True)
class PodHostname:
    """The pod's short hostname, its domain (`<subdomain>.<ns>.svc.<clusterDomain>`, or empty)
    and the name the kernel gets (the FQDN with setHostnameAsFQDN and a domain)."""

    hostname: str
    domain: str = ""
    kernel: str = ""

    @property
    def fqdn(self) -> str:
        return f"{self.hostname}.{self.domain}" if self.domain else self.hostname


# ---------------------------------------------------------------------------- resolv.conf


def _option_name(option: str) -> str:
    return option.split(":", 1)[0]


def merge_options(existing: Sequence[str], new: Sequence[str]) -> tuple[str, ...]:
    """Options by name, a later one replacing an earlier one in place (upstream uses a map and so
    an unspecified order; first-seen order is kept here)."""
    merged: dict[str, str] = {}
    for option in (*existing, *new):
        merged[_option_name(option)] = option
    return tuple(merged.values())


def parse_resolv_conf(text: str) -> ResolvConf:
    """Upstream's parser: '#' lines skipped; every `nameserver X` adds X (a bare `nameserver` is an
    error); the last `search` line wins, its '.' entries dropped and one trailing dot trimmed;
    `options` merge by name. Other lines (domain, sortlist, ';' comments) are ignored."""
    nameservers: list[str] = []
    searches: list[str] = []
    options: tuple[str, ...] = ()
    errors: list[str] = []
    for line in text.split("\n"):
        trimmed = line.strip()
        if trimmed.startswith("#"):
            continue
        fields = trimmed.split()
        if not fields:
            continue
        if fields[0] == "nameserver":
            if len(fields) >= 2:
                nameservers.append(fields[1])
            else:
                errors.append("nameserver list is empty")
        elif fields[0] == "search":
            searches = [s.removesuffix(".") for s in fields[1:] if s != "."]
        elif fields[0] == "options":
            options = merge_options(options, fields[1:])
    if errors:
        raise ResolvConfError(f"error parsing resolv.conf: {', '.join(errors)}")
    return ResolvConf(tuple(nameservers), tuple(searches), options)


def _omit_duplicates(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _canonical_ip(text: str) -> str:
    """The IP as Go's net.IP.String() prints it (IPv4-mapped IPv6 as dotted IPv4)."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return text
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _is_ipv6(text: str) -> bool:
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    return isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None


def pod_ref(pod: Pod) -> str:
    """Upstream's format.Pod: name_namespace(uid)."""
    return f"{pod.name}_{pod.namespace}({pod.uid})"


def dns_type(pod: Pod) -> str:
    """CLUSTER_FIRST (cluster DNS), DEFAULT (the node's) or NONE: ClusterFirst means Default for
    hostNetwork pods; an unknown policy (the apiserver refuses those) counts as ClusterFirst."""
    policy = pod.dns_policy or CLUSTER_FIRST
    if policy == NONE:
        return NONE
    if policy == CLUSTER_FIRST_WITH_HOST_NET:
        return CLUSTER_FIRST
    if policy == CLUSTER_FIRST and not pod.host_network:
        return CLUSTER_FIRST
    if policy in (CLUSTER_FIRST, DEFAULT):
        return DEFAULT
    log.warning("pod %s: unknown dnsPolicy %r, using ClusterFirst", pod_ref(pod), policy)
    return CLUSTER_FIRST


def _cluster_searches(namespace: str, cluster_domain: str, host: Sequence[str]) -> tuple[str, ...]:
    if not cluster_domain:
        return tuple(host)
    ours = (f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain)
    return _omit_duplicates((*ours, *host))


def _pod_dns_config(pod: Pod) -> tuple[list[str], list[str], list[str]] | None:
    """spec.dnsConfig as (nameservers, searches, options as name[:value]), None when unset."""
    cfg = pod.dns_config
    if cfg is None:
        return None
    options = [f"{o.name}:{o.value}" if o.value else o.name for o in cfg.options]
    return list(cfg.nameservers), list(cfg.searches), options


def _merge_pod_options(existing: Sequence[str], pod_options: Sequence[str]) -> tuple[str, ...]:
    """Upstream's mergeDNSOptions: by name, the pod's win; `name:` with an empty value is `name`."""
    merged: dict[str, str] = {}
    for option in (*existing, *pod_options):
        name, _, value = option.partition(":")
        merged[name] = value
    return tuple(f"{k}:{v}" if v else k for k, v in merged.items())


def _fit_nameservers(servers: tuple[str, ...], out: list[DNSWarning]) -> tuple[str, ...]:
    if len(servers) <= MAX_NAMESERVERS:
        return servers
    kept = servers[:MAX_NAMESERVERS]
    out.append(
        DNSWarning(
            DNS_CONFIG_FORMING,
            "Nameserver limits were exceeded, some nameservers have been omitted, "
            f"the applied nameserver line is: {' '.join(kept)}",
        )
    )
    return kept


def _fit_searches(searches: tuple[str, ...], out: list[DNSWarning]) -> tuple[str, ...]:
    """At most 32 paths, none longer than 253 chars, the joined line at most 2048 chars (cut from
    the end), as upstream's formDNSSearchFitsLimits."""
    exceeded = len(searches) > MAX_SEARCH_PATHS
    kept = list(searches[:MAX_SEARCH_PATHS])
    short = [s for s in kept if len(s) <= MAX_SEARCH_PATH_LEN]
    exceeded = exceeded or len(short) != len(kept)
    kept = short
    line_len = len(" ".join(kept))
    if line_len > MAX_SEARCH_LINE_CHARS:
        exceeded = True
        while kept and line_len > MAX_SEARCH_LINE_CHARS:
            line_len -= len(kept.pop()) + 1
    if exceeded:
        out.append(
            DNSWarning(
                DNS_CONFIG_FORMING,
                "Search Line limits were exceeded, some search paths have been omitted, "
                f"the applied search line is: {' '.join(kept)}",
            )
        )
    return tuple(kept)


def pod_dns(
    pod: Pod,
    resolv_conf: str | None,
    cluster_dns: Sequence[str],
    cluster_domain: str,
    node_ips: Sequence[str] = (),
) -> PodDNS:
    """The sandbox's DNS settings, as upstream's GetPodDNS.

    resolv_conf is the node's resolv.conf text, None when the kubelet's resolvConf is "" (then
    Default pods get localhost nameservers, one per node IP family, and the search line ".").
    ClusterFirst without clusterDNS falls back to Default with a MissingClusterDNS warning.
    Raises ResolvConfError when the node's resolv.conf has a bare `nameserver` line.
    """
    host = parse_resolv_conf(resolv_conf) if resolv_conf is not None else ResolvConf()
    warnings: list[DNSWarning] = []
    servers, searches, options = host.nameservers, host.searches, host.options
    kind = dns_type(pod)
    namespace = pod.namespace
    if kind == NONE:
        servers, searches, options = (), (), ()
    elif kind == CLUSTER_FIRST and cluster_dns:
        servers = tuple(_canonical_ip(ip) for ip in cluster_dns)
        searches = _cluster_searches(namespace, cluster_domain, host.searches)
        options = DEFAULT_OPTIONS
    else:
        if kind == CLUSTER_FIRST:
            warnings.append(
                DNSWarning(
                    MISSING_CLUSTER_DNS,
                    f'pod: "{pod_ref(pod)}". kubelet does not have ClusterDNS IP configured and '
                    'cannot create Pod using "ClusterFirst" policy. Falling back to "Default" '
                    "policy.",
                )
            )
        if resolv_conf is None:
            servers = tuple("::1" if _is_ipv6(ip) else "127.0.0.1" for ip in node_ips)
            servers = servers or ("127.0.0.1",)
            searches = (".",)
    extra = _pod_dns_config(pod)
    if extra is not None:
        servers = _omit_duplicates((*servers, *extra[0]))
        searches = _omit_duplicates((*searches, *extra[1]))
        options = _merge_pod_options(options, extra[2])
    servers = _fit_nameservers(servers, warnings)
    searches = _fit_searches(searches, warnings)
    return PodDNS(DNSSettings(servers, searches, options), tuple(warnings))


def render_resolv_conf(settings: DNSSettings) -> str:
    """The resolv.conf text a runtime writes for these settings (containerd's layout)."""
    lines = [f"search {' '.join(settings.searches)}"] if settings.searches else []
    lines += [f"nameserver {s}" for s in settings.nameservers]
    if settings.options:
        lines.append(f"options {' '.join(settings.options)}")
    return "".join(f"{line}\n" for line in lines)


# ---------------------------------------------------------------------------- hostname


def _check(pod: Pod, field: str, value: str, *, subdomain: bool = False) -> None:
    if subdomain:
        if len(value) <= 253 and _SUBDOMAIN_RE.fullmatch(value):
            return
        kind = "DNS subdomain (at most 253 lower-case alphanumeric characters, '-' or '.')"
    else:
        if len(value) <= HOSTNAME_MAX and _LABEL_RE.fullmatch(value):
            return
        kind = "DNS label (at most 63 lower-case alphanumeric characters or '-')"
    raise PodSpecError(pod.ref, field, f"{value!r} is not a valid {kind}")


def _truncate(pod: Pod, hostname: str) -> str:
    if len(hostname) <= HOSTNAME_MAX:
        return hostname
    cut = hostname[:HOSTNAME_MAX].rstrip("-.")
    log.warning("pod %s: hostname %r too long, truncated to %r", pod_ref(pod), hostname, cut)
    if not cut:
        raise PodSpecError(pod.ref, "spec.hostname", f"hostname {hostname!r} is invalid")
    return cut


def pod_hostname(pod: Pod, cluster_domain: str) -> PodHostname:
    """Upstream's GeneratePodHostNameAndDomain and GetNodenameForKernel.

    spec.hostnameOverride (beta, on by default since 1.35) wins, without a domain; else
    spec.hostname or the pod name, cut to 63 chars; spec.subdomain gives the domain
    `<subdomain>.<ns>.svc.<clusterDomain>`. setHostnameAsFQDN makes the kernel hostname the FQDN,
    refused (PodSpecError) over 64 chars. Invalid names raise PodSpecError.
    """
    override = pod.hostname_override
    if override is not None:
        _check(pod, "spec.hostnameOverride", override, subdomain=True)
        short = _truncate(pod, override)
        return PodHostname(short, "", short)
    hostname = pod.name
    if pod.hostname:
        hostname = pod.hostname
        _check(pod, "spec.hostname", hostname)
    hostname = _truncate(pod, hostname)
    domain = ""
    if pod.subdomain:
        _check(pod, "spec.subdomain", pod.subdomain)
        domain = f"{pod.subdomain}.{pod.namespace}.svc.{cluster_domain}"
    kernel = hostname
    if domain and pod.set_hostname_as_fqdn:
        fqdn = f"{hostname}.{domain}"
        if len(fqdn) > FQDN_MAX:
            raise PodSpecError(
                pod.ref,
                "spec.setHostnameAsFQDN",
                f"failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} is "
                f"too long ({FQDN_MAX} characters is the max, {len(fqdn)} characters requested)",
            )
        kernel = fqdn
    return PodHostname(hostname, domain, kernel)


# ---------------------------------------------------------------------------- the I/O side


def read_resolv_conf(path: str) -> str | None:
    """The node's resolv.conf text; None when the configured path is "" (no resolv.conf).
    ResolvConfError when it cannot be read or is over 10 MiB, as upstream's ReadAtMost."""
    if not path:
        return None
    try:
        with Path(path).open("rb") as f:
            data = f.read(MAX_RESOLV_CONF_BYTES + 1)
    except OSError as e:
        raise ResolvConfError(f"could not open resolv conf file: {e.strerror or e}") from None
    if len(data) > MAX_RESOLV_CONF_BYTES:
        raise ResolvConfError(f"resolv conf file is over {MAX_RESOLV_CONF_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


class DNSConfigurer:
    """The kubelet's DNS configuration (resolvConf, clusterDNS, clusterDomain, node IPs) applied
    to pods; re-reads the node's resolv.conf for every sandbox, as upstream does."""

    def __init__(
        self,
        *,
        resolv_conf: str,
        cluster_dns: Sequence[str] = (),
        cluster_domain: str = "",
        node_ips: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        self.resolv_conf = resolv_conf
        self.cluster_dns = tuple(cluster_dns)
        self.cluster_domain = cluster_domain
        self.node_ips: Callable[[], Sequence[str]] = node_ips or (lambda: ())

    def pod_dns(self, pod: Pod) -> PodDNS:
        """The pod's sandbox DNS; PodSpecError when the node's resolv.conf is unusable."""
        try:
            text = read_resolv_conf(self.resolv_conf)
            return pod_dns(pod, text, self.cluster_dns, self.cluster_domain, self.node_ips())
        except ResolvConfError as e:
            raise PodSpecError(pod.ref, "dnsPolicy", f"{self.resolv_conf}: {e}") from None

    def hostname(self, pod: Pod) -> PodHostname:
        return pod_hostname(pod, self.cluster_domain)
