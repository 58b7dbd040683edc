"""The tcpSocket probe: a TCP connect within the timeout, closed at once.
It must not send or read any data.
"""

from __future__ import annotations

import asyncio
import contextlib

from kubelet.prober.results import Outcome, Result


async def probe_tcp(host: str, port: int, seconds: float) -> Outcome:
    """Success when a connection opens within `seconds`."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), seconds)
    except TimeoutError:
        return Outcome(Result.FAILURE, f"dial tcp {where}: i/o timeout")
    except OSError as e:
        return Outcome(Result.FAILURE, f"dial tcp {where}: connect: {e.strerror or e}")
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), seconds)
    return Outcome(Result.SUCCESS)
