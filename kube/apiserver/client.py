"""The I/O half of apiserver access: sends requests.py's Requests over httpx.AsyncClient.
Owns connections, timeouts, retries and watch streams; must not build paths or parse Status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import platform
import random
import ssl
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from kube import __version__
from kube.apiserver import requests as rq
from kube.apiserver.errors import ApiConnectionError, ApiError, JsonObject, from_response
from kube.apiserver.kubeconfig import load_kubeconfig, ssl_context
from kube.apiserver.requests import (
    JsonPatch,
    ListOptions,
    ListResult,
    PatchType,
    Preconditions,
    Request,
    Resource,
    Selector,
    WatchEvent,
)
from kube.apiserver.retry import RetryPolicy, retryable_status

log = logging.getLogger(__name__)

DEFAULT_USER_AGENT = (
    f"pykubelet/{__version__} ({platform.system().lower()}/{platform.machine().lower()})"
)
WATCH_READ_SLACK = 30.0
"""A watch's read timeout is its server-side timeoutSeconds plus this."""

# Failures where the request never reached the server: safe to resend even for POST/PATCH.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class ApiClient:
    """Async apiserver client. Objects are plain dicts; errors are ApiError subclasses."""

    def __init__(
        self,
        base_url: str,
        *,
        verify: ssl.SSLContext | bool = True,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rnd: Callable[[], float] = random.random,
        sni_hostname: str | None = None,
    ) -> None:
        headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._base_url, self._headers, self._transport = base_url, headers, transport
        self._timeout = timeout
        self._http = self._new_http(verify)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rnd = rnd
        self._extensions = {"sni_hostname": sni_hostname} if sni_hostname else {}

    @classmethod
    def from_kubeconfig(
        cls, path: Path | str, *, context: str | None = None, **kwargs: Any
    ) -> ApiClient:
        """A client for the kubeconfig's (current) context; kwargs go to the constructor."""
        creds = load_kubeconfig(path, context=context)
        return cls(
            creds.server,
            verify=ssl_context(creds),
            token=creds.token,
            sni_hostname=creds.tls_server_name,
            **kwargs,
        )

    def _new_http(self, verify: ssl.SSLContext | bool) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self._base_url,
            verify=verify,
            transport=self._transport,
            headers=self._headers,
            timeout=self._timeout,
        )

    async def use_tls(self, verify: ssl.SSLContext) -> None:
        """Send every new request with `verify` (a rotated client certificate), and close all
        connections made with the old one, watches included, as upstream's kubelet does on
        rotation: nothing stays authenticated with the old certificate. Their users see a
        dropped connection (ApiConnectionError) and resume, as after an apiserver restart."""
        old, self._http = self._http, self._new_http(verify)
        await old.aclose()

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ---- sending ------------------------------------------------------------------------------

    def _build(self, request: Request, http_timeout: httpx.Timeout | float | None) -> httpx.Request:
        headers = dict(request.headers)
        if request.content_type:
            headers["Content-Type"] = request.content_type
        return self._http.build_request(
            request.method,
            request.path,
            params=list(request.params),
            content=request.body,
            headers=headers,
            timeout=self._timeout if http_timeout is None else http_timeout,
            extensions=self._extensions,
        )

    async def _open(
        self, request: Request, *, http_timeout: httpx.Timeout | float | None, stream: bool
    ) -> httpx.Response:
        """Send with retries; return a 2xx response (body unread if `stream`) or raise."""
        attempt = 0
        while True:
            try:
                response = await self._http.send(self._build(request, http_timeout), stream=stream)
            except httpx.TransportError as exc:
                lost = ApiConnectionError(message=_describe(exc), target=request.target)
                retry = request.idempotent or isinstance(exc, _NOT_SENT)
                await self._pause_or_raise(request, lost, attempt, retry=retry, cause=exc)
                attempt += 1
                continue
            if response.is_success:
                return response
            body = await response.aread()
            await response.aclose()
            retry_after = response.headers.get("Retry-After")
            error = from_response(
                response.status_code, body, target=request.target, retry_after=retry_after
            )
            # 429 from priority-and-fairness means the request was rejected unprocessed.
            retry = retryable_status(response.status_code) and (
                request.idempotent or response.status_code == 429
            )
            await self._pause_or_raise(request, error, attempt, retry=retry)
            attempt += 1

    async def _pause_or_raise(
        self,
        request: Request,
        error: ApiError,
        attempt: int,
        *,
        retry: bool,
        cause: BaseException | None = None,
    ) -> None:
        if not (retry and self._retry.more(attempt)):
            raise error from cause
        delay = self._retry.delay(attempt, self._rnd(), error.retry_after)
        log.debug(
            "apiserver retry method=%s path=%s attempt=%d delay=%.2fs error=%s",
            request.method,
            request.path,
            attempt + 1,
            delay,
            error,
        )
        await self._sleep(delay)

    async def send(self, request: Request, *, request_timeout: float | None = None) -> JsonObject:
        """Send one Request (with retries as its `idempotent` flag allows); the response dict."""
        response = await self._open(request, http_timeout=request_timeout, stream=False)
        return rq.interpret(request, response.status_code, response.content)

    # ---- verbs --------------------------------------------------------------------------------

    async def get(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        request_timeout: float | None = None,
    ) -> JsonObject:
        request = rq.get_request(resource, name, namespace=namespace, subresource=subresource)
        return await self.send(request, request_timeout=request_timeout)

    async def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: Selector | None = None,
        field_selector: Selector | None = None,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
        limit: int | None = 500,
        request_timeout: float | None = None,
    ) -> ListResult:
        """All items, fetched `limit` at a time; the resourceVersion is the list's snapshot.
        If a continue token expires (410) mid-way, the list is fetched again in one piece.
        """
        options = ListOptions(
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            resource_version_match=resource_version_match,
            limit=limit,
        )
        items: list[JsonObject] = []
        current = options
        while True:
            request = rq.list_request(resource, namespace=namespace, options=current)
            try:
                page = await self.send(request, request_timeout=request_timeout)
            except ApiError as exc:
                if exc.code != 410 or current.continue_ is None:
                    raise
                log.info("apiserver list continue expired target=%s; listing whole", exc.target)
                items, current = [], dataclasses.replace(options, limit=None)
                continue
            page_items, rv, token = rq.list_page(page)
            items.extend(page_items)
            if token is None:
                return ListResult(items=items, resource_version=rv)
            current = rq.next_page(options, token)

    async def create(
        self,
        resource: Resource,
        obj: JsonObject,
        *,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str | None = None,
        field_manager: str | None = None,
        dry_run: bool = False,
        request_timeout: float | None = None,
    ) -> JsonObject:
        """POST `obj`. For binding/eviction/token give `name` and `subresource`."""
        request = rq.create_request(
            resource,
            obj,
            namespace=namespace,
            name=name,
            subresource=subresource,
            field_manager=field_manager,
            dry_run=dry_run,
        )
        return await self.send(request, request_timeout=request_timeout)

    async def replace(
        self,
        resource: Resource,
        obj: JsonObject,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        field_manager: str | None = None,
        dry_run: bool = False,
        request_timeout: float | None = None,
    ) -> JsonObject:
        """PUT `obj` (a Conflict if its metadata.resourceVersion is stale)."""
        request = rq.replace_request(
            resource,
            obj,
            namespace=namespace,
            subresource=subresource,
            field_manager=field_manager,
            dry_run=dry_run,
        )
        return await self.send(request, request_timeout=request_timeout)

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: JsonPatch,
        *,
        namespace: str | None = None,
        patch_type: PatchType = PatchType.MERGE,
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool | None = None,
        dry_run: bool = False,
        request_timeout: float | None = None,
    ) -> JsonObject:
        request = rq.patch_request(
            resource,
            name,
            patch,
            namespace=namespace,
            patch_type=patch_type,
            subresource=subresource,
            field_manager=field_manager,
            force=force,
            dry_run=dry_run,
        )
        return await self.send(request, request_timeout=request_timeout)

    async def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: Preconditions | None = None,
        propagation_policy: str | None = None,
        dry_run: bool = False,
        request_timeout: float | None = None,
    ) -> JsonObject:
        """DELETE; returns the object (graceful deletion in progress) or a Success Status."""
        request = rq.delete_request(
            resource,
            name,
            namespace=namespace,
            grace_period_seconds=grace_period_seconds,
            preconditions=preconditions,
            propagation_policy=propagation_policy,
            dry_run=dry_run,
        )
        return await self.send(request, request_timeout=request_timeout)

    async def replace_status(
        self,
        resource: Resource,
        obj: JsonObject,
        *,
        namespace: str | None = None,
        field_manager: str | None = None,
        request_timeout: float | None = None,
    ) -> JsonObject:
        """PUT the status subresource (only .status of `obj` is taken by the apiserver)."""
        return await self.replace(
            resource,
            obj,
            namespace=namespace,
            subresource="status",
            field_manager=field_manager,
            request_timeout=request_timeout,
        )

    async def patch_status(
        self,
        resource: Resource,
        name: str,
        patch: JsonPatch,
        *,
        namespace: str | None = None,
        patch_type: PatchType = PatchType.MERGE,
        field_manager: str | None = None,
        force: bool | None = None,
        request_timeout: float | None = None,
    ) -> JsonObject:
        return await self.patch(
            resource,
            name,
            patch,
            namespace=namespace,
            patch_type=patch_type,
            subresource="status",
            field_manager=field_manager,
            force=force,
            request_timeout=request_timeout,
        )

    # ---- watch --------------------------------------------------------------------------------

    async def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: Selector | None = None,
        field_selector: Selector | None = None,
        resource_version: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
    ) -> AsyncGenerator[WatchEvent, None]:
        """Events (type, object) until the server ends the watch after `timeout_seconds`.
        An ERROR event is raised as ApiError (Gone for 410: list again); a dropped connection
        as ApiConnectionError. Use `contextlib.aclosing` so the stream closes when you stop.
        """
        options = ListOptions(
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            allow_watch_bookmarks=allow_bookmarks,
        )
        request = rq.watch_request(resource, namespace=namespace, options=options)
        read = timeout_seconds + WATCH_READ_SLACK if timeout_seconds else None
        http_timeout = httpx.Timeout(self._timeout, read=read)
        response = await self._open(request, http_timeout=http_timeout, stream=True)
        try:
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = _parse(line, request)
                if event.type == "ERROR":
                    raise rq.event_error(event, target=request.target)
                yield event
        except httpx.TransportError as exc:
            raise ApiConnectionError(message=_describe(exc), target=request.target) from exc
        finally:
            await response.aclose()


def _parse(line: str, request: Request) -> WatchEvent:
    try:
        return rq.parse_event(line)
    except ValueError as exc:
        raise ApiConnectionError(message=f"bad watch line: {exc}", target=request.target) from exc


def _describe(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
