"""IPVS mode's executor: applies ipvs_plan's ops (virtual/real servers over netlink with pyroute2,
addresses on kube-ipvs0, ipsets with `ipset restore`) and its fixed iptables rules.
"""

from __future__ import annotations

import logging
import shlex
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from net.proxy.history import SyncRecord
from net.proxy.iptables import rules
from net.proxy.iptables.executor import Executor
from net.proxy.ipvs import plan as ipvs_plan
from net.proxy.ipvs.netlink import ipset_refill_text, ipset_restore_text
from net.proxy.ipvs.plan import IpvsState, Op, RealServer, VirtualServer
from net.proxy.proxier import Proxier, SyncJob, SyncOutcome

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
        config: Any,
        *,
        full: bool,
    ) -> tuple[list[Op], list[str]]:
        """Returns the ops tried and the errors (empty when all were applied)."""
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
    """IpvsKernel over pyroute2 (imported on first use: the iptables mode never pays for it)."""

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
        from pyroute2 import IPVSDest, IPVSService

        ipvs, ipr = self._sockets()
        services: dict[tuple[str, int, str], tuple[VirtualServer, frozenset[RealServer]]] = {}
        for msg in ipvs.service("dump"):
            svc = IPVSService.from_message(msg)
            proto = _PROTO.get(svc.protocol, "TCP")
            vs = VirtualServer(svc.addr, svc.port, proto, svc.sched_name, svc.timeout or 0)
            reals = frozenset(
                RealServer(d.addr, d.port, d.weight)
                for d in (IPVSDest.from_message(m) for m in ipvs.dest("dump", service=svc))
            )
            services[vs.key] = (vs, reals)
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


class IpvsProxier(Proxier):
    """The proxier of IPVS mode: same events, pacing and bookkeeping; the kernel work is the
    IPVS plan's (a failed op makes the next sync a full one, which re-reads the kernel)."""

    def __init__(self, *args: Any, programmer: IpvsProgrammer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.programmer = programmer
        self.ipvs_applied: IpvsState | None = None

    def apply(self, job: SyncJob, out: SyncOutcome) -> None:
        want = ipvs_plan.desired(job.state, job.config)
        ops, errors = self.programmer.apply(self.ipvs_applied, want, job.config, full=job.full)
        out.extra = want
        if errors:
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            out.error = f"{errors[0]}{more}"
            for line in errors:
                log.error("ipvs: %s", line)
        log.debug("ipvs ops=%d errors=%d", len(ops), len(errors))

    def finish(self, job: SyncJob, out: SyncOutcome) -> SyncRecord:
        record = super().finish(job, out)
        if not out.error and isinstance(out.extra, IpvsState):
            self.ipvs_applied = out.extra
        elif out.error:
            self.ipvs_applied = None  # re-read from the kernel on the (full) retry
        return record
