"""IPVS mode planner: desired virtual/real servers, kube-ipvs0 addresses and ipset entries from
(state, config), the ordered ops that move the kernel there, and the IPVS kernel check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from net.proxy.iptables.rules import FILTER, NAT, static_chains
from net.proxy.model import ClusterState, Endpoint, ProxyConfig, Service, ServicePort
from net.proxy.policy import categorize, nodeport_ips, port_endpoints

DUMMY_INTERFACE = "kube-ipvs0"
DEFAULT_SCHEDULER = "rr"

# Upstream's ipset names and types (pkg/proxy/ipvs/ipset.go).
IPSETS: Mapping[str, str] = {
    "KUBE-LOOP-BACK": "hash:ip,port,ip",
    "KUBE-CLUSTER-IP": "hash:ip,port",
    "KUBE-EXTERNAL-IP": "hash:ip,port",
    "KUBE-EXTERNAL-IP-LOCAL": "hash:ip,port",
    "KUBE-LOAD-BALANCER": "hash:ip,port",
    "KUBE-LOAD-BALANCER-LOCAL": "hash:ip,port",
    "KUBE-LOAD-BALANCER-FW": "hash:ip,port",
    "KUBE-LOAD-BALANCER-SOURCE-CIDR": "hash:ip,port,net",
    "KUBE-NODE-PORT-TCP": "bitmap:port",
    "KUBE-NODE-PORT-LOCAL-TCP": "bitmap:port",
    "KUBE-NODE-PORT-UDP": "bitmap:port",
    "KUBE-NODE-PORT-LOCAL-UDP": "bitmap:port",
    "KUBE-NODE-PORT-SCTP-HASH": "hash:ip,port",
    "KUBE-NODE-PORT-LOCAL-SCTP-HASH": "hash:ip,port",
    "KUBE-HEALTH-CHECK-NODE-PORT": "bitmap:port",
}


def ipvs_available(proc_modules_text: str, proc_net_ip_vs_exists: bool) -> tuple[bool, str]:
    """Whether the kernel can run IPVS mode, and if not a message saying why and what to do.
    /proc/net/ip_vs exists when IPVS is built in or its module is loaded."""
    if proc_net_ip_vs_exists:
        return True, ""
    loaded = {line.split()[0] for line in proc_modules_text.splitlines() if line.strip()}
    if "ip_vs" in loaded:
        return False, (
            "IPVS proxy mode: the ip_vs module is loaded but /proc/net/ip_vs is missing "
            "(is /proc from another network namespace?); use --proxy-mode=iptables"
        )
    return False, (
        "IPVS proxy mode needs the kernel's IP Virtual Server (CONFIG_IP_VS): "
        "/proc/net/ip_vs does not exist and the ip_vs module is not loaded; "
        "run `modprobe ip_vs ip_vs_rr` on a kernel that has it, or use --proxy-mode=iptables"
    )


@dataclass(frozen=True, order=True)
class VirtualServer:
    address: str
    port: int
    protocol: str  # TCP, UDP, SCTP
    scheduler: str = DEFAULT_SCHEDULER
    persistent_timeout: int = 0  # sessionAffinity ClientIP timeout; 0: not persistent

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.address, self.port, self.protocol)


@dataclass(frozen=True, order=True)
class RealServer:
    address: str
    port: int
    weight: int = 1


@dataclass(frozen=True)
class IpvsState:
    services: Mapping[tuple[str, int, str], tuple[VirtualServer, frozenset[RealServer]]]
    addresses: frozenset[str]  # /32 addresses on kube-ipvs0
    ipsets: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Op:
    """One step: add/del-address, add/update/del-service, add/update/del-dest,
    ipset-add/ipset-del."""

    action: str
    service: VirtualServer | None = None
    dest: RealServer | None = None
    address: str = ""
    ipset: str = ""
    entry: str = ""

    def text(self) -> str:
        if self.action.endswith("address"):
            return f"{self.action} {self.address}/32 dev {DUMMY_INTERFACE}"
        if self.action.startswith("ipset"):
            return f"{self.action} {self.ipset} {self.entry}"
        assert self.service is not None
        vs = self.service
        s = f"{vs.protocol.lower()} {vs.address}:{vs.port}"
        if self.dest is not None:
            return f"{self.action} {s} -> {self.dest.address}:{self.dest.port} w{self.dest.weight}"
        persist = f" persistent {vs.persistent_timeout}" if vs.persistent_timeout else ""
        return f"{self.action} {s} {vs.scheduler}{persist}"


def _reals(eps: list[Endpoint]) -> frozenset[RealServer]:
    return frozenset(RealServer(e.ip, e.port) for e in eps)


def desired(
    state: ClusterState, config: ProxyConfig, scheduler: str = DEFAULT_SCHEDULER
) -> IpvsState:
    services: dict[tuple[str, int, str], tuple[VirtualServer, frozenset[RealServer]]] = {}
    addresses: set[str] = set()
    sets: dict[str, set[str]] = {name: set() for name in IPSETS}
    node_ips = list(nodeport_ips(config) or config.node_ips)

    def add(vs: VirtualServer, reals: frozenset[RealServer]) -> None:
        services[vs.key] = (vs, reals)

    for key in sorted(state.services):
        svc = state.services[key]
        for port in svc.ports:
            _plan_port(
                svc,
                port,
                state.endpoints.get(key, ()),
                config,
                scheduler,
                node_ips,
                add,
                addresses,
                sets,
            )
    return IpvsState(services, frozenset(addresses), {k: frozenset(v) for k, v in sets.items()})


def _plan_port(
    svc: Service,
    port: ServicePort,
    all_eps: tuple[Endpoint, ...],
    config: ProxyConfig,
    scheduler: str,
    node_ips: list[str],
    add: Callable[[VirtualServer, frozenset[RealServer]], None],
    addresses: set[str],
    sets: dict[str, set[str]],
) -> None:
    eps = port_endpoints(port, all_eps)
    cluster, local, reachable, _ = categorize(svc, port, eps, config.node_name)
    proto = port.protocol.lower()
    timeout = svc.affinity_timeout or 0
    internal = _reals(local if svc.internal_local else cluster)
    external = _reals(local if svc.external_local else cluster)

    def vs(ip: str, p: int) -> VirtualServer:
        return VirtualServer(ip, p, port.protocol, scheduler, timeout)

    add(vs(svc.cluster_ip, port.port), internal)
    addresses.add(svc.cluster_ip)
    sets["KUBE-CLUSTER-IP"].add(f"{svc.cluster_ip},{proto}:{port.port}")
    for e in reachable:
        sets["KUBE-LOOP-BACK"].add(f"{e.ip},{proto}:{e.port},{e.ip}")
    for ip in svc.external_ips:
        add(vs(ip, port.port), external)
        addresses.add(ip)
        sets["KUBE-EXTERNAL-IP"].add(f"{ip},{proto}:{port.port}")
        if svc.external_local:
            sets["KUBE-EXTERNAL-IP-LOCAL"].add(f"{ip},{proto}:{port.port}")
    for ip in svc.lb_ips:
        add(vs(ip, port.port), external)
        addresses.add(ip)
        entry = f"{ip},{proto}:{port.port}"
        sets["KUBE-LOAD-BALANCER"].add(entry)
        if svc.external_local:
            sets["KUBE-LOAD-BALANCER-LOCAL"].add(entry)
        if svc.lb_source_ranges:
            sets["KUBE-LOAD-BALANCER-FW"].add(entry)
            for cidr in svc.lb_source_ranges:
                sets["KUBE-LOAD-BALANCER-SOURCE-CIDR"].add(f"{entry},{cidr}")
    if port.node_port:
        for ip in node_ips:
            add(vs(ip, port.node_port), external)
        if port.protocol == "SCTP":
            for ip in node_ips:
                sets["KUBE-NODE-PORT-SCTP-HASH"].add(f"{ip},sctp:{port.node_port}")
                if svc.external_local:
                    sets["KUBE-NODE-PORT-LOCAL-SCTP-HASH"].add(f"{ip},sctp:{port.node_port}")
        else:
            sets[f"KUBE-NODE-PORT-{port.protocol}"].add(str(port.node_port))
            if svc.external_local:
                sets[f"KUBE-NODE-PORT-LOCAL-{port.protocol}"].add(str(port.node_port))
    if svc.health_check_node_port:
        sets["KUBE-HEALTH-CHECK-NODE-PORT"].add(str(svc.health_check_node_port))


def diff(current: IpvsState | None, want: IpvsState) -> list[Op]:
    """Ordered ops from `current` (None: nothing programmed) to `want`: bind addresses and
    fill ipsets first, then services and their real servers; removals last."""
    cur = current or IpvsState({}, frozenset(), {})
    ops: list[Op] = [Op("add-address", address=a) for a in sorted(want.addresses - cur.addresses)]
    for name in sorted(want.ipsets):
        have = cur.ipsets.get(name, frozenset())
        ops.extend(Op("ipset-add", ipset=name, entry=e) for e in sorted(want.ipsets[name] - have))
    removals: list[Op] = []
    for key in sorted(want.services):
        vs, reals = want.services[key]
        old = cur.services.get(key)
        if old is None:
            ops.append(Op("add-service", vs))
            old_reals: dict[tuple[str, int], RealServer] = {}
        else:
            if old[0] != vs:
                ops.append(Op("update-service", vs))
            old_reals = {(r.address, r.port): r for r in old[1]}
        new_reals = {(r.address, r.port): r for r in reals}
        for rk in sorted(new_reals):
            r = new_reals[rk]
            if rk not in old_reals:
                ops.append(Op("add-dest", vs, r))
            elif old_reals[rk] != r:
                ops.append(Op("update-dest", vs, r))
        removals.extend(
            Op("del-dest", vs, old_reals[rk]) for rk in sorted(old_reals) if rk not in new_reals
        )
    ops.extend(removals)
    for key in sorted(cur.services):
        if key not in want.services:
            ops.append(Op("del-service", cur.services[key][0]))
    for name in sorted(cur.ipsets):
        gone = cur.ipsets[name] - want.ipsets.get(name, frozenset())
        ops.extend(Op("ipset-del", ipset=name, entry=e) for e in sorted(gone))
    ops.extend(Op("del-address", address=a) for a in sorted(cur.addresses - want.addresses))
    return ops


def iptables_rules(config: ProxyConfig) -> dict[str, dict[str, tuple[str, ...]]]:
    """The fixed iptables rules of IPVS mode (they match the ipsets, so they don't change
    with Services): masquerade off-cluster traffic to cluster IPs, NodePorts and external
    IPs, and hairpin traffic (KUBE-LOOP-BACK) in KUBE-POSTROUTING."""
    heads = static_chains(config)
    masq_src = (
        "" if config.masquerade_all or not config.cluster_cidr else (f"! -s {config.cluster_cidr} ")
    )
    services = [
        '-m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" '
        f"-m set --match-set KUBE-CLUSTER-IP dst,dst {masq_src}-j KUBE-MARK-MASQ",
        '-m comment --comment "Kubernetes service external ip + port for masquerade and '
        'filter purpose" -m set --match-set KUBE-EXTERNAL-IP dst,dst -j KUBE-MARK-MASQ',
        '-m comment --comment "Kubernetes service lb portal" -m set --match-set '
        "KUBE-LOAD-BALANCER dst,dst -j KUBE-MARK-MASQ",
        "-m addrtype --dst-type LOCAL -j KUBE-NODE-PORT",
        "-m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT",
    ]
    nodeport = []
    for proto in ("TCP", "UDP"):
        p = proto.lower()
        nodeport.append(
            f"-p {p} -m {p} -m set --match-set KUBE-NODE-PORT-LOCAL-{proto} dst -j RETURN"
        )
        nodeport.append(
            f"-p {p} -m {p} -m set --match-set KUBE-NODE-PORT-{proto} dst -j KUBE-MARK-MASQ"
        )
    nodeport.append("-p sctp -m set --match-set KUBE-NODE-PORT-LOCAL-SCTP-HASH dst,dst -j RETURN")
    nodeport.append("-p sctp -m set --match-set KUBE-NODE-PORT-SCTP-HASH dst,dst -j KUBE-MARK-MASQ")
    post = [
        '-m comment --comment "Kubernetes endpoints dst ip:port, source ip for solving hairpin '
        'purpose" -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE',
        *heads[(NAT, "KUBE-POSTROUTING")][0],
    ]
    return {
        NAT: {
            "KUBE-SERVICES": tuple(services),
            "KUBE-NODE-PORT": tuple(nodeport),
            "KUBE-POSTROUTING": tuple(post),
            "KUBE-MARK-MASQ": tuple(heads[(NAT, "KUBE-MARK-MASQ")][0]),
        },
        FILTER: {"KUBE-FORWARD": tuple(heads[(FILTER, "KUBE-FORWARD")][0])},
    }
