"""The rotation loop shared by the client and the serving certificate, as upstream's certificate
manager: use the stored pair while it is valid, request a new one at a jittered 70-90% of its
lifetime, store it, hand it on; retry failures with back-off. Knows nothing of what the pair is for.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Protocol

from kube.apiserver import ApiConnectionError, ApiError
from kubelet.certs.csr import CSRClient, CSRError, Request, obtain
from kubelet.certs.store import CertStore, Pair, StoreError

log = logging.getLogger(__name__)
WAIT_SECONDS = 15 * 60.0
"""How long one CSR may wait for approval and issuance before a new one is made (upstream)."""
RETRY_MIN, RETRY_MAX = 2.0, 32.0
"""Upstream's back-off after a failed renewal: 2 s doubling, then every 32 s."""


class TTLGauge(Protocol):
    def set_function(self, f: Callable[[], float]) -> None: ...


class ErrorCounter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


def rotation_deadline(
    not_before: datetime.datetime, not_after: datetime.datetime, rand: float
) -> datetime.datetime:
    """When to renew: 70% of the lifetime plus up to 20% more at random (upstream's jitter)."""
    total = not_after - not_before
    return not_before + total * (0.7 + 0.2 * min(max(rand, 0.0), 1.0))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _server_answered(error: Exception) -> bool:
    """The apiserver is responsive: it answered (refused, denied, or timed the CSR out)."""
    if isinstance(error, ApiError):
        return not isinstance(error, ApiConnectionError)
    return isinstance(error, CSRError)


class CertificateManager:
    """Keeps a valid CSR-issued pair in `store` and awaits `on_cert` with every pair it uses.
    `make` builds each request (CSRError when none can be made yet). With `on_expired`, a
    current pair that expired while the apiserver answers but will not renew it is reported
    (upstream's kubelet exits then, so its supervisor can bootstrap again)."""

    def __init__(
        self,
        client: CSRClient,
        store: CertStore,
        *,
        make: Callable[[], Request],
        on_cert: Callable[[Pair], Awaitable[None]],
        what: str,
        hint: str = "",
        initial: Pair | None = None,
        ttl: TTLGauge | None = None,
        renew_errors: ErrorCounter | None = None,
        on_expired: Callable[[str], None] | None = None,
        rand: Callable[[], float] = random.random,
        now: Callable[[], datetime.datetime] = _now,
        wait: float = WAIT_SECONDS,
    ) -> None:
        self._client = client
        self.store = store
        self._make = make
        self._on_cert = on_cert
        self.what = what
        self._hint = hint
        self._initial = initial
        self._ttl = ttl
        self._renew_errors = renew_errors
        self._on_expired = on_expired
        self._rand = rand
        self._now = now
        self._wait = wait
        self.current: Pair | None = None
        self._deadline: datetime.datetime | None = None

    async def run(self) -> None:
        """Forever: use the stored pair while valid, renew at its deadline, retry with back-off."""
        if self.current is None:
            pair = self.store.load() or self._initial
            if pair is not None and pair.not_after > self._now():
                await self.use(pair)
        retry = RETRY_MIN
        while True:
            if self._deadline is not None:
                wait = (self._deadline - self._now()).total_seconds()
                if wait > 0:
                    log.info("%s: next rotation at %s", self.what, self._deadline.isoformat())
                    await asyncio.sleep(wait)
            try:
                await self.use(await self.request())
                retry = RETRY_MIN
            except (ApiError, CSRError, StoreError, OSError, ValueError) as e:
                if self._renew_errors is not None:
                    self._renew_errors.inc()
                log.warning("%s: renewal failed (retry in %.0fs): %s", self.what, retry, e)
                self._check_expired(e)
                await asyncio.sleep(retry)
                retry = min(RETRY_MAX, retry * 2)

    def ttl_seconds(self) -> float:
        """Whole seconds until the current certificate expires (negative once expired); +inf
        while there is none (upstream's ttl gauges)."""
        if self.current is None:
            return math.inf
        return float(math.trunc((self.current.not_after - self._now()).total_seconds()))

    async def use(self, pair: Pair) -> None:
        """Make `pair` the current one: hand it on, set its rotation deadline."""
        await self._on_cert(pair)
        self.current = pair
        self._deadline = rotation_deadline(pair.not_before, pair.not_after, self._rand())
        if self._ttl is not None:
            self._ttl.set_function(self.ttl_seconds)
        log.info("%s from %s valid until %s", self.what, pair.path, pair.not_after.isoformat())

    async def request(self) -> Pair:
        """One CSR: make it, wait for the certificate, check it, store it."""
        request = self._make()
        cert_pem = await obtain(
            self._client, request, wait=self._wait, now=self._now(), hint=self._hint
        )
        return self.store.save(cert_pem, request.key_pem, self._now())

    def _check_expired(self, error: Exception) -> None:
        current = self.current
        if self._on_expired is None or current is None or current.not_after > self._now():
            return
        if _server_answered(error):
            self._on_expired(
                f"the {self.what} from {current.path} expired at "
                f"{current.not_after.isoformat()} and the apiserver does not renew it: {error}"
            )
        else:
            log.error(
                "%s from %s has expired and the apiserver is not answering; a restart may be "
                "needed to get new initial credentials",
                self.what,
                current.path,
            )
