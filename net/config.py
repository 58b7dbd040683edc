"""The network config our plugin gets from the runtime (one conflist entry, capabilities merged).
Pure parsing into NetConf; raises CniError for bad input, touches nothing on the host."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from kube.jsontypes import JsonMap
from net import names
from net.cni.protocol import E_INVALID_CONFIG, CniError, Json
from net.iptables import PortMapping


@dataclass(frozen=True)
class NetConf:
    bridge: str
    pod_cidr: str
    cluster_cidr: str
    dns: Json = field(default_factory=dict)
    port_mappings: tuple[PortMapping, ...] = ()

    @property
    def gateway(self) -> str:
        return str(ipaddress.ip_network(self.pod_cidr).network_address + 1)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.pod_cidr).prefixlen


def _cidr(config: JsonMap, key: str, required: bool) -> str:
    value = config.get(key)
    if value in (None, "") and not required:
        return ""
    try:
        net = ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise CniError(E_INVALID_CONFIG, "invalid network config", f"{key}: {value!r}") from None
    if net.version != 4:
        raise CniError(E_INVALID_CONFIG, "invalid network config", f"{key}: IPv4 only")
    return str(net)


def parse_netconf(config: JsonMap) -> NetConf:
    """Check `bridge`, `podCIDR`, `clusterCIDR` (defaults to podCIDR), `dns` and
    runtimeConfig.portMappings."""
    try:
        bridge = names.check_ifname(str(config.get("bridge") or ""))
    except ValueError as e:
        raise CniError(E_INVALID_CONFIG, "invalid network config", f"bridge: {e}") from None
    pod_cidr = _cidr(config, "podCIDR", True)
    cluster_cidr = _cidr(config, "clusterCIDR", False) or pod_cidr
    dns = config.get("dns") or {}
    runtime = config.get("runtimeConfig") or {}
    if not isinstance(dns, dict) or not isinstance(runtime, dict):
        raise CniError(E_INVALID_CONFIG, "invalid network config", "dns/runtimeConfig")
    raw_maps = runtime.get("portMappings") or []
    if not isinstance(raw_maps, list):
        raise CniError(E_INVALID_CONFIG, "invalid network config", "portMappings not a list")
    try:
        maps = tuple(PortMapping.parse(m) for m in raw_maps if isinstance(m, dict))
    except ValueError as e:
        raise CniError(E_INVALID_CONFIG, "invalid portMappings", str(e)) from None
    return NetConf(bridge, pod_cidr, cluster_cidr, dns, maps)
