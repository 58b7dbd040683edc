"""Lifecycle hooks (postStart, preStop) as upstream runs them: exec through CRI ExecSync, httpGet to
the pod or a host, sleep. Must not kill containers itself: the executor acts on what it returns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import httpx

from cri import api
from cri.errors import CRIError
from kube import KUBERNETES_VERSION
from kube.jsontypes import JsonMap
from kubelet import events as ev
from kubelet.pods.model import Container, Pod

log = logging.getLogger(__name__)

FAILED_PRE_STOP = "FailedPreStopHook"
HTTP_FALLBACK = "LifecycleHTTPFallback"
MAX_REDIRECTS = 10
HTTP_TIMEOUT = 10.0


class HookError(Exception):
    """A hook ran and failed; the text is what upstream puts after `failed - error:`."""


class Execer(Protocol):
    async def exec_sync(
        self,
        container_id: str,
        cmd: Sequence[str],
        *,
        timeout_seconds: int = 0,
        deadline: float | None = None,
    ) -> api.ExecSyncResponse: ...


def pod_ref(pod: Pod) -> str:
    """upstream format.Pod: name_namespace(uid)."""
    return f"{pod.name}_{pod.namespace}({pod.uid})"


def go_list(items: Sequence[Any]) -> str:
    """Go's %v of a []string: [a b c]."""
    return "[" + " ".join(str(i) for i in items) + "]"


def resolve_port(port: object, container: Container) -> int:
    """A port by number, by name from the container's ports, or a number written as a string."""
    number: int | None = None
    if isinstance(port, int):
        number = port
    else:
        name = str(port)
        for p in container.ports:
            if p.name == name:
                number = p.container_port
                break
        else:
            if not name.isdigit():
                raise HookError(f"port {name} not found")
            number = int(name)
    if not 0 < number < 65536:
        raise HookError(f"invalid port number: {number}")
    return number


def http_url(action: JsonMap, container: Container, host: str) -> str:
    """upstream NewRequestForHTTPGetAction's URL: scheme://host:port/path."""
    scheme = str(action.get("scheme") or "HTTP").lower()
    port = resolve_port(action.get("port", 80), container)
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    path = str(action.get("path") or "")
    if not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{hostport}{path}"


def http_headers(action: JsonMap) -> dict[str, str]:
    headers = {"User-Agent": f"kube-lifecycle/{KUBERNETES_VERSION[1:]}", "Accept": "*/*"}
    for h in action.get("httpHeaders") or []:
        headers[str(h.get("name", ""))] = str(h.get("value", ""))
    return headers


def _plain_http_answer(exc: BaseException) -> bool:
    """An HTTPS request that a plain-HTTP server answered (upstream isHTTPResponseError)."""
    text = str(exc).lower()
    return "wrong version number" in text or "record layer failure" in text


@dataclass(frozen=True)
class HookTarget:
    """What a hook runs against: the pod, the container spec and its runtime ID."""

    pod: Pod
    container: Container
    container_id: str

    @property
    def name(self) -> str:
        return self.container.name


class HooksManager:
    """Implements seams.Hooks."""

    def __init__(
        self,
        runtime: Execer,
        *,
        pod_ips: Callable[[str], Awaitable[list[str]]] | None = None,
        record: Callable[[ev.PodEvent], None] | None = None,
        http_timeout: float = HTTP_TIMEOUT,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._rt = runtime
        self._pod_ips = pod_ips
        self._record = record
        self._http_timeout = http_timeout
        self._sleep = sleep

    async def post_start(
        self,
        pod: Pod,
        container: Container,
        container_id: str,
        *,
        pod_ips: Sequence[str] | None = None,
    ) -> str | None:
        handler = container.post_start
        if not handler:
            return None
        target = HookTarget(pod, container, container_id)
        message = await self.run(target, handler, pod_ips=pod_ips)
        if message is not None:
            log.warning(
                "pod %s container %s: postStart failed: %s", pod_ref(pod), target.name, message
            )
        return message

    async def pre_stop(
        self,
        pod: Pod,
        container: Container,
        container_id: str,
        grace: int,
        *,
        pod_ips: Sequence[str] | None = None,
    ) -> None:
        handler = container.pre_stop
        if not handler or grace <= 0:
            return
        target = HookTarget(pod, container, container_id)
        started = time.monotonic()
        try:
            async with asyncio.timeout(grace):
                message = await self.run(target, handler, pod_ips=pod_ips, deadline=grace)
        except TimeoutError:
            log.info(
                "pod %s container %s: preStop hook not completed in grace period %ds",
                pod_ref(pod),
                target.name,
                grace,
            )
            return
        took = time.monotonic() - started
        if message is None:
            log.info("pod %s container %s: preStop done in %.1fs", pod_ref(pod), target.name, took)
            return
        log.warning("pod %s container %s: preStop failed: %s", pod_ref(pod), target.name, message)
        # Upstream keeps the message out of the event so that secrets do not leak.
        self._event(target, ev.WARNING, FAILED_PRE_STOP, "PreStopHook failed")

    async def run(
        self,
        target: HookTarget,
        handler: JsonMap,
        *,
        pod_ips: Sequence[str] | None = None,
        deadline: float | None = None,
    ) -> str | None:
        """Run one handler; None on success, else upstream's failure message."""
        where = f'for Container "{target.name}" in Pod "{pod_ref(target.pod)}"'
        if handler.get("exec") is not None:
            cmd = [str(c) for c in handler["exec"].get("command") or []]
            try:
                await self._exec(target, cmd, deadline)
            except HookError as e:
                text, output = e.args[0], e.args[1] if len(e.args) > 1 else ""
                return (
                    f"Exec lifecycle hook ({go_list(cmd)}) {where} failed - error: {text}, "
                    f'message: "{output}"'
                )
            return None
        if handler.get("httpGet") is not None:
            action = handler["httpGet"]
            try:
                await self._http(target, action, pod_ips)
            except HookError as e:
                return f"HTTP lifecycle hook ({action.get('path', '')}) {where} failed - error: {e}"
            return None
        if handler.get("sleep") is not None:
            await self._sleep(float(handler["sleep"].get("seconds", 0)))
            return None
        return f"Cannot run handler: invalid handler: {dict(handler)}"

    async def _exec(self, target: HookTarget, cmd: list[str], deadline: float | None) -> None:
        try:
            resp = await self._rt.exec_sync(target.container_id, cmd, deadline=deadline)
        except CRIError as e:
            raise HookError(e.message, "") from e
        output = (resp.stdout + resp.stderr).decode("utf-8", errors="replace")
        if resp.exit_code != 0:
            stderr = resp.stderr.decode("utf-8", errors="replace")
            text = f"command '{' '.join(cmd)}' exited with {resp.exit_code}: {stderr}"
            raise HookError(text, output)

    async def _host(
        self, target: HookTarget, action: JsonMap, pod_ips: Sequence[str] | None
    ) -> str:
        if action.get("host"):
            return str(action["host"])
        ips = list(pod_ips or [])
        if not ips and self._pod_ips is not None:
            ips = await self._pod_ips(target.pod.uid)
        ips = ips or list(target.pod.status_pod_ips)
        if not ips:
            raise HookError("failed to find networking container: the pod has no IP")
        return ips[0]

    async def _http(
        self, target: HookTarget, action: JsonMap, pod_ips: Sequence[str] | None
    ) -> None:
        url = http_url(action, target.container, await self._host(target, action, pod_ips))
        headers = http_headers(action)
        try:
            await self._get(url, headers)
        except HookError as e:
            if not (url.startswith("https://") and e.__cause__ and _plain_http_answer(e.__cause__)):
                raise
            headers.pop("Authorization", None)
            await self._get("http://" + url[len("https://") :], headers)
            host = urlsplit(url).netloc
            self._event(
                target,
                ev.WARNING,
                HTTP_FALLBACK,
                f"request to HTTPS lifecycle hook {host} got HTTP response, "
                "retry with HTTP succeeded",
                field=False,
            )

    async def _get(self, url: str, headers: dict[str, str]) -> None:
        """GET with no certificate checks; redirects followed only on the same host; any 2xx or
        3xx answer is success."""
        async with httpx.AsyncClient(verify=False, timeout=self._http_timeout) as client:
            for _ in range(MAX_REDIRECTS + 1):
                try:
                    resp = await client.get(url, headers=headers)
                except httpx.HTTPError as e:
                    raise HookError(f"Get {url!r}: {e or type(e).__name__}") from e
                location = resp.headers.get("Location")
                if not (resp.is_redirect and location):
                    break
                nxt = urljoin(url, location)
                if urlsplit(nxt).hostname != urlsplit(url).hostname:
                    break
                url = nxt
        if not 200 <= resp.status_code < 400:
            raise HookError(f"HTTP status code {resp.status_code} from {url}")

    def _event(
        self, target: HookTarget, type_: str, reason: str, message: str, *, field: bool = True
    ) -> None:
        if self._record is None:
            return
        pod = target.pod
        inits = {c.name for c in pod.init_containers}
        path = ev.container_field_path(target.name, init=target.name in inits) if field else ""
        self._record(ev.PodEvent(pod.namespace, pod.name, pod.uid, type_, reason, message, path))
