"""A scripted apiserver on httpx.MockTransport: canned responses in order, requests recorded.
Test helper only: no sockets, no sleeping (sleeps are recorded), no real apiserver semantics.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpx

from kube.apiserver.client import ApiClient
from kube.apiserver.retry import RetryPolicy

Obj = dict[str, Any]


class Stream(httpx.AsyncByteStream):
    """A watch body: one JSON line per event, then an error, a hang, or a clean end."""

    def __init__(
        self, events: list[Obj], *, error: Exception | None = None, hang: bool = False
    ) -> None:
        self.events = events
        self.error = error
        self.hang = hang
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for event in self.events:
            yield (json.dumps(event) + "\n").encode()
        if self.error is not None:
            raise self.error
        if self.hang:
            await asyncio.Event().wait()

    async def aclose(self) -> None:
        self.closed = True


Reply = httpx.Response | Exception


class FakeApi:
    """Answers each request with the next scripted reply; keeps every request it saw."""

    def __init__(self, *replies: Reply) -> None:
        self.replies: deque[Reply] = deque(replies)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def add(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.replies:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        reply = self.replies.popleft()
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def client(self, *, attempts: int = 3) -> ApiClient:
        return ApiClient(
            "https://api.test",
            transport=httpx.MockTransport(self.handler),
            retry=RetryPolicy(attempts=attempts, base=0.2, cap=1.0),
            sleep=self.sleep,
            rnd=lambda: 0.5,
        )

    def params(self, index: int) -> dict[str, str]:
        return dict(self.requests[index].url.params)


def obj(name: str, rv: str, namespace: str = "default", **extra: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": rv}, **extra}


def event(kind: str, name: str, rv: str) -> Obj:
    return {"type": kind, "object": obj(name, rv)}


def bookmark(rv: str) -> Obj:
    return {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": rv}}}


def status(code: int, reason: str, message: str = "") -> Obj:
    return {
        "kind": "Status",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


def error_event(code: int, reason: str, message: str = "") -> Obj:
    return {"type": "ERROR", "object": status(code, reason, message)}


def listing(items: list[Obj], rv: str, token: str | None = None) -> httpx.Response:
    meta: Obj = {"resourceVersion": rv}
    if token:
        meta["continue"] = token
    return httpx.Response(
        200, json={"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": items}
    )


def failure(code: int, reason: str, message: str = "", **headers: str) -> httpx.Response:
    return httpx.Response(code, json=status(code, reason, message), headers=headers)


def watching(stream: Stream) -> httpx.Response:
    return httpx.Response(200, stream=stream, headers={"Content-Type": "application/json"})
