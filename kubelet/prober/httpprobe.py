"""The httpGet probe: one GET (HTTP or HTTPS without certificate checks), redirects followed only
to the same host, 200-399 is success. It must not use proxies or keep connections alive.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from kube import KUBERNETES_VERSION
from kubelet.prober.results import Outcome, Result

MAX_BODY = 10 * 1024
MAX_REDIRECTS = 10


def user_agent() -> str:
    major_minor = ".".join(KUBERNETES_VERSION.lstrip("v").split(".")[:2])
    return f"kube-probe/{major_minor}"


def probe_url(scheme: str, host: str, port: int, path: str) -> str:
    h = f"[{host}]" if ":" in host else host
    return f"{scheme.lower()}://{h}:{port}{path}"


def make_client() -> httpx.AsyncClient:
    """One client for every httpGet probe: no certificate checks, no proxies from the
    environment, no redirects followed by httpx itself, no keep-alive (as upstream)."""
    return httpx.AsyncClient(
        verify=False,
        trust_env=False,
        follow_redirects=False,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


def _headers(extra: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    names = {k.lower() for k, _ in extra}
    out = list(extra)
    if "user-agent" not in names:
        out.append(("User-Agent", user_agent()))
    if "accept" not in names:
        out.append(("Accept", "*/*"))
    return out


async def _get(
    client: httpx.AsyncClient, url: httpx.URL, headers: list[tuple[str, str]], seconds: float
) -> tuple[int, str, httpx.URL | None]:
    """(status, body prefix, redirect target or None)."""
    async with client.stream("GET", url, headers=headers, timeout=seconds) as resp:
        body = b""
        async for chunk in resp.aiter_bytes():
            body += chunk
            if len(body) >= MAX_BODY:
                break
        location = resp.headers.get("location") if resp.is_redirect else None
        target = url.join(location) if location else None
        return resp.status_code, body[:MAX_BODY].decode(errors="replace"), target


async def probe_http(
    client: httpx.AsyncClient,
    url: str,
    headers: Sequence[tuple[str, str]],
    seconds: float,
) -> Outcome:
    """GET `url`; 200-399 success; a redirect to another host stops there with a warning."""
    current, hdrs = httpx.URL(url), _headers(headers)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            code, body, target = await _get(client, current, hdrs, seconds)
        except httpx.TimeoutException:
            return Outcome(Result.FAILURE, f'Get "{current}": context deadline exceeded')
        except (httpx.HTTPError, OSError, ValueError) as e:
            return Outcome(Result.FAILURE, f'Get "{current}": {e or type(e).__name__}')
        if target is None:
            if 200 <= code < 400:
                return Outcome(Result.SUCCESS, body)
            return Outcome(Result.FAILURE, f"HTTP probe failed with statuscode: {code}")
        if target.host != current.host:
            return Outcome(Result.WARNING, f"Probe terminated redirects, Response body: {body}")
        current = target
    return Outcome(Result.FAILURE, f'Get "{current}": stopped after {MAX_REDIRECTS} redirects')
