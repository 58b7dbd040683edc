"""IPVS mode's ProxyBackend: applies the IPVS plan's ops (virtual/real servers over netlink with
pyroute2, addresses on kube-ipvs0, ipsets with `ipset restore`) and its fixed iptables rules.
Refuses to start, in one line, on a kernel without IPVS.
"""

from __future__ import annotations

import logging
import shlex
import socket
import subprocess
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from net.proxy.backend import SyncError, Traits, Unsupported
from net.proxy.conntrack import ConntrackEntry
from net.proxy.iptables import executor, rules
from net.proxy.iptables.executor import Executor
from net.proxy.iptables.metrics import IptablesMetrics
from net.proxy.ipvs import plan as ipvs_plan
from net.proxy.ipvs.netlink import ipset_refill_text, ipset_restore_text
from net.proxy.ipvs.plan import IpvsState, Op, RealServer, VirtualServer
from net.proxy.model import ClusterState, ProxyConfig, ServiceKey
from net.proxy.views import Explanation, TraceResult

log = logging.getLogger(__name__)

Runner = Callable[..., "subprocess.CompletedProcess[str]"]
_PROTO = {socket.IPPROTO_TCP: "TCP", socket.IPPROTO_UDP: "UDP", socket.IPPROTO_SCTP: "SCTP"}


class IpvsKernel(Protocol):
    """The netlink side of IPVS mode (pyroute2 in production, a recorder in tests)."""

    def ensure_dummy(self) -> None: ...

    def current(self) -> IpvsState:
        """Virtual servers with their real servers, and the addresses on kube-ipvs0."""
        ...

    def apply(self, op: Op) -> None:
        """One service/dest/address op; raises on refusal."""
        ...

    def close(self) -> None: ...


def iptables_text(tables: Mapping[str, Mapping[str, Sequence[str]]]) -> str:
    out = []
    for table in (rules.FILTER, rules.NAT):
        chains = tables.get(table, {})
        if not chains:
            continue
        out.append(f"*{table}")
        out.extend(f":{chain} - [0:0]" for chain in chains)
        for chain, lines in chains.items():
            out.extend(f"-A {chain} {line}" for line in lines)
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def jump_checks(tables: Mapping[str, Mapping[str, Sequence[str]]]) -> list[list[str]]:
    """The builtin-chain jumps (in -C form) whose target chain IPVS mode has."""
    return [
        ["-t", table, "-C", chain, *shlex.split(rule)]
        for table, chain, rule in rules.BUILTIN_JUMPS
        if shlex.split(rule)[-1] in tables.get(table, {})
    ]


class IpvsProgrammer:
    """Moves the kernel from what it has to `want`; errors of single ops are collected."""

    def __init__(self, kernel: IpvsKernel, executor: Executor, *, run: Runner = subprocess.run):
        self.kernel = kernel
        self.executor = executor
        self._run = run

    def apply(
        self,
        current: IpvsState | None,
        want: IpvsState,
        config: ProxyConfig,
        *,
        full: bool,
    ) -> tuple[list[Op], list[str]]:
        """Returns the ops tried and the errors (empty when all were applied). The kernel's
        sockets live for this one call: syncs run on the engine's worker threads, and a
        pyroute2 socket set up on one thread and then used on another gets ECONNRESET."""
        try:
            return self._apply(current, want, config, full=full)
        finally:
            self.kernel.close()

    def _apply(
        self,
        current: IpvsState | None,
        want: IpvsState,
        config: ProxyConfig,
        *,
        full: bool,
    ) -> tuple[list[Op], list[str]]:
        errors: list[str] = []
        if full:
            self.kernel.ensure_dummy()
            current = self.kernel.current()
        ops = ipvs_plan.diff(current, want)
        text = ipset_refill_text(want) if full else ipset_restore_text(ops)
        if text:  # before the iptables rules: they name the sets
            r = self._run(
                ["ipset", "restore", "-exist"], input=text, capture_output=True, text=True
            )
            if r.returncode != 0:
                errors.append(f"ipset restore: {r.stderr.strip()}")
        if full and not errors:
            tables = ipvs_plan.iptables_rules(config)
            self.executor.restore(iptables_text(tables))
            self.executor.ensure(jump_checks(tables))
        for op in ops:
            if op.action.startswith("ipset"):
                continue
            try:
                self.kernel.apply(op)
            except Exception as exc:  # netlink errors are many types; each is reported
                errors.append(f"{op.text()}: {exc}")
        return ops, errors


class Pyroute2Ipvs:
    """IpvsKernel over pyroute2 (imported on first use: the iptables mode never pays for it).
    Sockets open on first use and close in close(), which the programmer calls after each
    sync, so one sync's calls all go through sockets of the thread that runs it."""

    def __init__(self) -> None:
        self._ipvs: Any = None
        self._ipr: Any = None
        self._ifindex = 0

    def _sockets(self) -> tuple[Any, Any]:
        if self._ipvs is None:
            from pyroute2 import IPVS, IPRoute

            self._ipvs, self._ipr = IPVS(), IPRoute()
        return self._ipvs, self._ipr

    def ensure_dummy(self) -> None:
        _, ipr = self._sockets()
        found = ipr.link_lookup(ifname=ipvs_plan.DUMMY_INTERFACE)
        if not found:
            ipr.link("add", ifname=ipvs_plan.DUMMY_INTERFACE, kind="dummy")
            found = ipr.link_lookup(ifname=ipvs_plan.DUMMY_INTERFACE)
        self._ifindex = found[0]

    def current(self) -> IpvsState:
        from net.proxy.ipvs.netlink import real_server_of, service_attrs, virtual_server_of

        ipvs, ipr = self._sockets()
        services: dict[tuple[str, int, str], tuple[VirtualServer, frozenset[RealServer]]] = {}
        for msg in ipvs.service("dump"):
            vs = virtual_server_of(msg)
            dests = ipvs.dest("dump", service=service_attrs(vs))
            services[vs.key] = (vs, frozenset(real_server_of(m) for m in dests))
        addresses = frozenset(
            a.get_attr("IFA_LOCAL") for a in ipr.get_addr(index=self._ifindex, family=2)
        )
        return IpvsState(services, addresses)

    def apply(self, op: Op) -> None:
        from net.proxy.ipvs.netlink import dest_attrs, service_attrs

        ipvs, ipr = self._sockets()
        verb = op.action.split("-")[0]
        command = {"add": "add", "update": "set", "del": "del"}[verb]
        if op.action.endswith("address"):
            ipr.addr(command, index=self._ifindex, address=op.address, prefixlen=32)
        elif op.dest is not None and op.service is not None:
            ipvs.dest(command, service=service_attrs(op.service), dest=dest_attrs(op.dest))
        elif op.service is not None:
            ipvs.service(command, service=service_attrs(op.service))

    def close(self) -> None:
        for sock in (self._ipvs, self._ipr):
            if sock is not None:
                sock.close()
        self._ipvs = self._ipr = None


def check_kernel(proc: Path = Path("/proc")) -> None:
    """Unsupported, with a one-line reason, when the kernel has no IPVS."""
    try:
        modules = (proc / "modules").read_text()
    except OSError:
        modules = ""
    ok, why = ipvs_plan.ipvs_available(modules, (proc / "net" / "ip_vs").exists())
    if not ok:
        raise Unsupported(why)


SYSCTLS = {
    # IPVS-forwarded packets go through conntrack, so KUBE-POSTROUTING can masquerade them
    # (without it a request from the node to a ClusterIP left with the kube-ipvs0 address as
    # source and timed out); connections to removed real servers are dropped, not kept
    "net/ipv4/vs/conntrack": "1",
    "net/ipv4/vs/expire_nodest_conn": "1",
    "net/ipv4/vs/expire_quiescent_template": "1",
    "net/ipv4/ip_forward": "1",
}
"""What upstream's IPVS proxier sets at start (strictARP's arp_ignore/arp_announce aside)."""


def ensure_sysctls(proc_sys: Path = Path("/proc/sys")) -> list[str]:
    """Sets SYSCTLS; returns (and logs) the ones that could not be set."""
    failed = []
    for key, value in SYSCTLS.items():
        path = proc_sys / key
        try:
            if path.read_text().strip() != value:
                path.write_text(f"{value}\n")
        except OSError as exc:
            log.warning("ipvs: cannot set %s=%s: %s", key.replace("/", "."), value, exc)
            failed.append(key)
    return failed


def open_backend(proc: Path = Path("/proc")) -> IpvsBackend:
    """The backend over pyroute2 and this host's iptables; Unsupported, with a one-line reason,
    on a kernel without IPVS (or a host without iptables)."""
    check_kernel(proc)
    try:
        found = executor.detect()
    except (RuntimeError, OSError) as exc:
        raise Unsupported(str(exc)) from exc
    iptables = Executor(found)
    ensure_sysctls(proc / "sys")
    return IpvsBackend(IpvsProgrammer(Pyroute2Ipvs(), iptables))


@dataclass(frozen=True)
class IpvsSync:
    """The ops one sync tried (its history entry)."""

    ops: tuple[Op, ...]
    changed: tuple[ServiceKey, ...] = ()
    removed_chains: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.ops)

    def text(self) -> str:
        return "".join(f"{op.text()}\n" for op in self.ops)


class IpvsBackend:
    """The kernel work of IPVS mode: the IPVS plan's ops (a failed op makes the next sync a
    full one, which re-reads the kernel). No debug views of the rules yet."""

    def __init__(self, programmer: IpvsProgrammer) -> None:
        self.programmer = programmer
        name = programmer.executor.backend.name
        self.traits = Traits("ipvs", name, size_unit="ops", text_kind="IPVS and ipset ops")
        self.metrics = IptablesMetrics()
        self.applied: IpvsState | None = None
        self._sent: IpvsState | None = None

    def register_metrics(self, registry: CollectorRegistry) -> None:
        self.metrics.register(registry)

    def sync(
        self,
        state: ClusterState,
        config: ProxyConfig,
        *,
        full: bool,
        changed: Collection[ServiceKey],
    ) -> IpvsSync:
        self._sent = None
        want = ipvs_plan.desired(state, config)
        ops, errors = self.programmer.apply(self.applied, want, config, full=full)
        sent = IpvsSync(tuple(ops))
        log.debug("ipvs ops=%d errors=%d", len(ops), len(errors))
        if errors:
            for line in errors:
                log.error("ipvs: %s", line)
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            raise SyncError(f"{errors[0]}{more}", sent)
        self._sent = want
        return sent

    def settle(self, *, ok: bool, full: bool) -> None:
        sent, self._sent = self._sent, None
        self.metrics.record_sync(ok=ok, full=full)
        # on failure: re-read from the kernel on the (full) retry
        self.applied = sent if ok else None

    def rule_count(self) -> int:
        return 0

    def trace(
        self, *, src: str, dst: str, port: int, proto: str, local_addresses: Sequence[str]
    ) -> TraceResult | None:
        return None

    def explain(
        self,
        state: ClusterState,
        key: ServiceKey,
        *,
        config: ProxyConfig,
        conntrack: Sequence[ConntrackEntry],
    ) -> Explanation | None:
        return None

    def close(self) -> None:
        self.programmer.kernel.close()
