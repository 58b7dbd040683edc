"""ApiClient.use_tls, for client certificate rotation: requests after the swap go out on new
connections, and those made before (a watch in progress too) are closed, as upstream's kubelet
closes them, so the watcher sees a dropped connection and resumes. A loopback HTTP server only.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest

from kube.apiserver import NODES, ApiClient, ApiConnectionError

EVENT = b'{"type":"ADDED","object":{"metadata":{"name":"n1","resourceVersion":"1"}}}\n'


class Server:
    """Answers GETs with a node and watches with one event, then keeps the stream open."""

    def __init__(self) -> None:
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if b"watch=true" in head.split(b"\r\n")[0]:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n"
                        + b"%x\r\n%s\r\n"
                        % (len(EVENT), EVENT)
                    )
                    await writer.drain()
                    await asyncio.sleep(3600)
                body = b'{"kind":"Node","metadata":{"name":"n1"}}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()


async def test_swap_closes_old_connections_and_watches() -> None:
    server = Server()
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    client = ApiClient(f"http://127.0.0.1:{port}", verify=False)
    seen: list[str] = []

    async def watch() -> None:
        async for event in client.watch(NODES, timeout_seconds=60):
            seen.append(event.type)

    try:
        assert (await client.get(NODES, "n1"))["metadata"]["name"] == "n1"
        task = asyncio.create_task(watch())
        for _ in range(200):
            if seen:
                break
            await asyncio.sleep(0.01)
        assert seen == ["ADDED"] and server.connections == 1  # the GET's, kept alive
        await client.use_tls(ssl.create_default_context())
        with pytest.raises(ApiConnectionError, match="connection error"):
            await asyncio.wait_for(task, 5)
        assert (await client.get(NODES, "n1"))["metadata"]["name"] == "n1"
        assert server.connections == 2  # a new connection, with the new TLS context
    finally:
        await client.close()
        srv.close()
