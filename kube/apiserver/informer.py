"""List-then-watch with resume and relist (a reflector) and the in-memory store it keeps.
Talks to the apiserver only through a list/watch client; must not interpret the objects it holds.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Protocol

from kube.apiserver.errors import ApiError, Gone, JsonObject
from kube.apiserver.requests import (
    ListResult,
    Resource,
    Selector,
    WatchEvent,
    describe,
    object_key,
    resource_version,
    selector,
)
from kube.apiserver.retry import RetryPolicy

log = logging.getLogger(__name__)

SYNC = "SYNC"
"""Synthetic event type: the store was (re)filled from a list; `items` is the complete set."""
MIN_WATCH_TIMEOUT = 300
"""Watches ask the server to end them after 1x-2x this many seconds (spreads reconnects)."""
BACKOFF = RetryPolicy(attempts=0, base=0.8, cap=30.0)
"""Pause after failed lists and watches (the attempt count is ignored: it never gives up)."""


class ListWatcher(Protocol):
    """What the reflector needs of a client (ApiClient has it)."""

    async def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = ...,
        label_selector: Selector | None = ...,
        field_selector: Selector | None = ...,
    ) -> ListResult: ...

    def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None = ...,
        label_selector: Selector | None = ...,
        field_selector: Selector | None = ...,
        resource_version: str | None = ...,
        timeout_seconds: int | None = ...,
        allow_bookmarks: bool = ...,
    ) -> AsyncGenerator[WatchEvent, None]: ...


@dataclass(frozen=True)
class InformerEvent:
    """SYNC (after every list), ADDED, MODIFIED or DELETED. BOOKMARKs are not passed on."""

    type: str
    object: JsonObject | None = None
    """The object of a watch event; None for SYNC."""
    items: tuple[JsonObject, ...] = ()
    """For SYNC: every object that exists now (anything else held before is gone)."""


class Store:
    """The objects last seen, keyed by (namespace, name) unless another key function is given."""

    def __init__(self, key: Callable[[JsonObject], Hashable] = object_key) -> None:
        self._key = key
        self._items: dict[Hashable, JsonObject] = {}

    def replace(self, items: Iterable[JsonObject]) -> list[JsonObject]:
        """Hold exactly `items`; return the objects that were held and are not any more."""
        new = {self._key(item): item for item in items}
        removed = [obj for key, obj in self._items.items() if key not in new]
        self._items = new
        return removed

    def apply(self, event: WatchEvent) -> None:
        key = self._key(event.object)
        if event.type == "DELETED":
            self._items.pop(key, None)
        elif event.type in ("ADDED", "MODIFIED"):
            self._items[key] = event.object

    def get(self, key: Hashable) -> JsonObject | None:
        return self._items.get(key)

    def values(self) -> list[JsonObject]:
        return list(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items


class Reflector:
    """Lists, then watches from the list's resourceVersion; resumes from the last one seen
    (bookmarks included) when a watch ends or drops, and lists again on 410 Gone.
    Non-retryable errors (401, 403, 404, 400...) are raised: the supervisor decides.
    """

    def __init__(
        self,
        client: ListWatcher,
        resource: Resource,
        *,
        namespace: str | None = None,
        field_selector: Selector | None = None,
        label_selector: Selector | None = None,
        store: Store | None = None,
        backoff: RetryPolicy = BACKOFF,
        min_watch_timeout: int = MIN_WATCH_TIMEOUT,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rnd: Callable[[], float] = random.random,
    ) -> None:
        self._client = client
        self._resource = resource
        self._where: dict[str, Any] = {
            "namespace": namespace,
            "field_selector": field_selector,
            "label_selector": label_selector,
        }
        self.store = store if store is not None else Store()
        self.resource_version = ""
        """The last resourceVersion seen (list, event or bookmark); "" before the first list."""
        self._backoff = backoff
        self._min_watch_timeout = min_watch_timeout
        self._sleep = sleep
        self._rnd = rnd
        self._failures = 0
        self._since_list = 0
        """Watch events (bookmarks included) since the last list."""
        self.target = describe(resource, namespace=namespace) + "".join(
            f" ({kind} {sel})"
            for kind, sel in (
                ("fields", selector(field_selector)),
                ("labels", selector(label_selector)),
            )
            if sel
        )
        """What is listed and watched, for log lines: `pods in all namespaces (fields ...)`."""

    async def events(self) -> AsyncGenerator[InformerEvent, None]:
        """SYNC, then watch events, forever. Close it (aclosing) or cancel the task to stop."""
        need_list = True
        while True:
            if need_list:
                listed = await self._list()
                if listed is None:
                    continue
                need_list = False
                yield listed
            try:
                async with aclosing(self._watch()) as stream:
                    async for event in stream:
                        yield event
            except Gone as exc:
                log.info("watch expired, listing again target=%s error=%s", self.target, exc)
                need_list = True
                if not self._since_list:  # expired straight after a list: do not spin
                    await self._pause(str(exc))
            except ApiError as exc:
                await self._pause_or_raise(exc)

    async def _list(self) -> InformerEvent | None:
        try:
            result = await self._client.list(self._resource, **self._where)
        except ApiError as exc:
            await self._pause_or_raise(exc)
            return None
        self.store.replace(result.items)
        self.resource_version = result.resource_version
        self._since_list = 0
        self._failures = 0
        log.debug(
            "listed target=%s items=%d resourceVersion=%s",
            self.target,
            len(result.items),
            self.resource_version,
        )
        return InformerEvent(SYNC, items=tuple(result.items))

    async def _watch(self) -> AsyncGenerator[InformerEvent, None]:
        """One watch from self.resource_version; keeps the store and resourceVersion current."""
        timeout = int(self._min_watch_timeout * (1 + self._rnd()))
        seen = 0
        stream = self._client.watch(
            self._resource,
            resource_version=self.resource_version,
            timeout_seconds=timeout,
            allow_bookmarks=True,
            **self._where,
        )
        async with aclosing(stream):
            async for event in stream:
                seen += 1
                self._since_list += 1
                self._failures = 0
                self.resource_version = resource_version(event.object) or self.resource_version
                if event.type == "BOOKMARK":
                    continue
                self.store.apply(event)
                yield InformerEvent(event.type, event.object)
        if not seen:  # a watch that ends at once, again and again, must not spin
            await self._pause("watch ended without events")

    async def _pause_or_raise(self, exc: ApiError) -> None:
        if not exc.retryable:
            raise exc
        await self._pause(str(exc))

    async def _pause(self, why: str) -> None:
        delay = self._backoff.delay(self._failures, self._rnd())
        self._failures += 1
        log.warning(
            "list/watch failed target=%s resourceVersion=%s retry_in=%.1fs error=%s",
            self.target,
            self.resource_version,
            delay,
            why,
        )
        await self._sleep(delay)


def list_then_watch(
    client: ListWatcher,
    resource: Resource,
    *,
    namespace: str | None = None,
    field_selector: Selector | None = None,
    label_selector: Selector | None = None,
    store: Store | None = None,
    **kwargs: Any,
) -> AsyncGenerator[InformerEvent, None]:
    """SYNC with the full set, then ADDED/MODIFIED/DELETED forever (see Reflector).
    A node passes field_selector={"spec.nodeName": node} for pods, {"metadata.name": node}
    for its Node.
    """
    reflector = Reflector(
        client,
        resource,
        namespace=namespace,
        field_selector=field_selector,
        label_selector=label_selector,
        store=store,
        **kwargs,
    )
    return reflector.events()


async def watch_forever(
    client: ListWatcher,
    resource: Resource,
    on_event: Callable[[InformerEvent], Awaitable[None] | None],
    **kwargs: Any,
) -> None:
    """Feed list_then_watch's events to `on_event` (plain or async) until cancelled."""
    async with aclosing(list_then_watch(client, resource, **kwargs)) as events:
        async for event in events:
            result = on_event(event)
            if inspect.isawaitable(result):
                await result
