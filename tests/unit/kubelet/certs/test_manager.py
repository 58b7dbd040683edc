"""The rotation loop shared by both certificates, on an injected clock and jitter: the deadline at
70-90% of the lifetime, a valid stored pair kept until then, a due one renewed at once, failures
counted and retried, and an expired pair reported only when the apiserver answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import math
from pathlib import Path
from typing import Any

import pytest

from kube.apiserver import ApiConnectionError, Forbidden
from kubelet.certs import bootstrap, csr, manager
from kubelet.certs.csr import CSRError, Request
from kubelet.certs.manager import CertificateManager, rotation_deadline
from kubelet.certs.store import CLIENT, CertStore, Pair

from .signer import T0, FakeSigner, sign

HOUR = datetime.timedelta(hours=1)


@pytest.mark.parametrize(("rand", "fraction"), [(0.0, 0.7), (0.5, 0.8), (1.0, 0.9), (7.0, 0.9)])
def test_rotation_deadline_is_70_to_90_percent(rand: float, fraction: float) -> None:
    end = T0 + 100 * HOUR
    assert rotation_deadline(T0, end, rand) == T0 + 100 * HOUR * fraction


class Counter:
    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class Clock:
    def __init__(self, at: datetime.datetime) -> None:
        self.at = at

    def __call__(self) -> datetime.datetime:
        return self.at


def _request() -> Request:
    return bootstrap.client_request("node-1", csr.new_key_pem(), named=False)


def _manager(
    signer: Any, store: CertStore, used: list[Pair], clock: Clock, **kw: Any
) -> CertificateManager:
    async def on_cert(pair: Pair) -> None:
        used.append(pair)

    return CertificateManager(
        signer, store, make=_request, on_cert=on_cert, what="client certificate", now=clock, **kw
    )


def _stored(store: CertStore, hours: float = 10.0) -> Pair:
    key_pem = csr.new_key_pem()
    cert = sign(bootstrap.client_request("node-1", key_pem, named=False).csr_pem, hours=hours)
    return store.save(cert, key_pem, T0)


async def _run_until(m: CertificateManager, done: Any, *, ticks: int = 400) -> None:
    task = asyncio.create_task(m.run())
    try:
        for _ in range(ticks):
            if done():
                return
            await asyncio.sleep(0.005)
        raise AssertionError("the manager did not get there")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_valid_pair_is_used_and_kept_until_its_deadline(tmp_path: Path) -> None:
    store = CertStore(tmp_path, CLIENT)
    stored = _stored(store)
    used: list[Pair] = []
    signer = FakeSigner()
    m = _manager(signer, store, used, Clock(T0 + HOUR), rand=lambda: 0.5)
    await _run_until(m, lambda: used)
    await asyncio.sleep(0.02)
    assert [p.path for p in used] == [stored.path] and signer.csrs == {}
    assert m.ttl_seconds() == 9 * 3600


async def test_a_pair_past_its_deadline_is_renewed_with_a_new_key(tmp_path: Path) -> None:
    """8.5 h into a 10 h certificate with the earliest deadline (70%): a new CSR at once; the
    new pair is stored, the symlink swapped, and handed on."""
    store = CertStore(tmp_path, CLIENT)
    old = _stored(store)
    used: list[Pair] = []
    clock = Clock(T0 + 8.5 * HOUR)
    signer = FakeSigner(start=clock.at)
    m = _manager(signer, store, used, clock, rand=lambda: 0.0)
    await _run_until(m, lambda: len(used) == 2)
    assert used[0].path == old.path and len(signer.csrs) == 1
    assert store.current_path.resolve() == used[1].path != old.path
    assert used[1].cert.public_key() != old.cert.public_key()
    assert m.current is used[1]


async def test_the_deadline_is_jittered_per_certificate(tmp_path: Path) -> None:
    store = CertStore(tmp_path, CLIENT)
    _stored(store)
    clock = Clock(T0 + 7.5 * HOUR)  # 75%: due with jitter 0.0-0.25, not with 0.5
    for rand, due in ((0.2, True), (0.5, False)):
        signer = FakeSigner(start=clock.at)
        used: list[Pair] = []
        m = _manager(signer, store, used, clock, rand=lambda r=rand: r)
        await _run_until(m, used.__len__)
        await asyncio.sleep(0.03)
        assert bool(signer.csrs) is due, rand


async def test_failures_are_counted_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(manager, "RETRY_MIN", 0.001)
    store = CertStore(tmp_path, CLIENT)
    used: list[Pair] = []
    errors = Counter()
    signer = FakeSigner(unreachable=2)
    m = _manager(signer, store, used, Clock(T0), renew_errors=errors)
    assert m.ttl_seconds() == math.inf
    await _run_until(m, lambda: used)
    assert errors.value == 2 and signer.creates == 1


def _failing(error: Exception) -> Any:
    class Failing(FakeSigner):
        async def create(self, resource: Any, obj: dict[str, Any]) -> dict[str, Any]:
            raise error

    return Failing()


@pytest.mark.parametrize(
    ("error", "reported"),
    [
        (Forbidden(code=403, reason="Forbidden", message="not allowed"), True),
        (CSRError("certificate signing request csr-1 was denied: no"), True),
        (ApiConnectionError(message="ConnectError: refused"), False),
    ],
)
async def test_an_expired_pair_is_reported_only_when_the_apiserver_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, reported: bool
) -> None:
    """Upstream's kubelet exits when its client certificate expired and the apiserver answers
    (so its supervisor can bootstrap again), and waits while the apiserver is unreachable."""
    monkeypatch.setattr(manager, "RETRY_MIN", 0.001)
    store = CertStore(tmp_path, CLIENT)
    expiring = _stored(store, hours=1)
    clock = Clock(T0 + 0.95 * HOUR)
    why: list[str] = []
    m = _manager(_failing(error), store, [], clock, on_expired=why.append)
    task = asyncio.create_task(m.run())
    await asyncio.sleep(0.05)
    assert why == [] and m.current is not None  # due, failing, not yet expired
    clock.at = T0 + 1.5 * HOUR
    await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert bool(why) is reported
    if reported:
        assert f"from {expiring.path} expired at 2026-11-23T13:00:00" in why[0]
