"""The sync engine (net.proxy.proxier) against a recording ProxyBackend: what it asks of a backend
(full first, then only the changed Services), how a refused sync is recorded and owed again, and
that the history's text is rendered once, after the backend's timed part. No rules here."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from net.proxy.backend import SyncError, Traits
from net.proxy.conntrack import ConntrackEntry
from net.proxy.history import History
from net.proxy.metrics import ProxyMetrics
from net.proxy.model import ClusterState, ProxyConfig, ServiceKey
from net.proxy.proxier import Proxier
from net.proxy.views import Explanation, TraceResult

from .objects import endpoint_slice, modified, service, sync

CONFIG = ProxyConfig(node_name="n1", node_ips=("192.168.1.10",))


@dataclass(frozen=True)
class Batch:
    changed: tuple[ServiceKey, ...]
    removed_chains: tuple[str, ...] = ()
    size: int = 1
    renders: list[int] = field(default_factory=list)

    def text(self) -> str:
        self.renders.append(1)
        return f"batch of {', '.join('/'.join(k) for k in self.changed)}\n"


class Recorder:
    """A backend that remembers what it was asked; `refuse` makes the next sync fail."""

    traits = Traits("test", "recorder")

    def __init__(self) -> None:
        self.syncs: list[tuple[bool, frozenset[ServiceKey], int]] = []
        self.settled: list[tuple[bool, bool]] = []
        self.refuse = False
        self.registered = False

    def register_metrics(self, registry: CollectorRegistry) -> None:
        self.registered = True

    def sync(
        self,
        state: ClusterState,
        config: ProxyConfig,
        *,
        full: bool,
        changed: Collection[ServiceKey],
    ) -> Batch:
        self.syncs.append((full, frozenset(changed), len(state.services)))
        sent = Batch(tuple(sorted(state.services if full else changed)))
        if self.refuse:
            self.refuse = False
            raise SyncError("refused at op 3", sent)
        return sent

    def settle(self, *, ok: bool, full: bool) -> None:
        self.settled.append((ok, full))

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
        pass


def _engine() -> tuple[Proxier, Recorder]:
    backend = Recorder()
    p = Proxier(CONFIG, backend, metrics=ProxyMetrics(CollectorRegistry()), history=History())
    p.on_service(sync(service("web", "10.0.0.10"), service("db", "10.0.0.11", 5432)))
    p.on_slice(sync(endpoint_slice("web-1", "web", ["10.88.1.2"])))
    return p, backend


def test_full_first_then_only_the_changed_services() -> None:
    p, backend = _engine()
    assert backend.registered
    first = p.sync()
    assert first.full and first.changed == ("default/db", "default/web") and first.lines == 1
    p.on_slice(modified(endpoint_slice("web-1", "web", ["10.88.1.3"])))
    second = p.sync()
    assert not second.full and second.changed == ("default/web",)
    assert backend.syncs == [
        (True, frozenset({("default", "web"), ("default", "db")}), 2),
        (False, frozenset({("default", "web")}), 2),
    ]
    assert backend.settled == [(True, True), (True, False)]


def test_a_refused_sync_is_recorded_with_what_was_sent_and_owed_in_full() -> None:
    p, backend = _engine()
    p.sync()
    p.on_slice(modified(endpoint_slice("web-1", "web", ["10.88.1.3"])))
    backend.refuse = True
    failed = p.sync()
    assert failed.error == "refused at op 3" and failed.changed == ("default/web",)
    assert backend.settled[-1] == (False, False)
    assert p.dirty and p.pending.full and ("default", "web") in p.pending.services
    retry = p.sync()
    assert retry.full and not retry.error and backend.syncs[-1][0]
    text = p.history.to_json(with_text=True)
    assert text[1]["text"] == "batch of default/web\n" and text[1]["error"]


def test_the_text_is_rendered_once_per_sync_after_the_backend_returned() -> None:
    p, _ = _engine()
    job = p.prepare()
    out = p.run(job)
    assert out.sent is not None and out.text.startswith("batch of")
    assert isinstance(out.sent, Batch) and out.sent.renders == [1]
    record = p.finish(job, out)
    assert record.text == out.text and out.sent.renders == [1]
