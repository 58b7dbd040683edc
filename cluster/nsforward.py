"""Forwards TCP from 127.0.0.1:<port> inside a network namespace to 127.0.0.1:<port> of this
process's own netns, so processes of a simulated node reach the loopback-only control plane; or,
without a netns, from <address>:<port> of this netns (pods reaching the apiserver).

Runs as its own process in the root netns (`python -m cluster.nsforward --netns PATH
--port P ...`, or `--address ADDR --port P`). The listening sockets are made on a thread that
has entered the target netns (setns is per thread); a socket keeps its netns, so the event loop
serves them from the root netns.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from net import netns

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

log = logging.getLogger("pykubelet.nsforward")

T = TypeVar("T")
LOOPBACK = "127.0.0.1"
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)


def forward_command(
    netns_path: str | None, ports: Sequence[int], *, address: str = LOOPBACK
) -> list[str]:
    """The command line of a forwarder for `ports` into the netns at `netns_path`, or (None)
    from `address` of this netns."""
    cmd = [sys.executable, "-m", "cluster.nsforward"]
    cmd += ["--netns", netns_path] if netns_path else ["--address", address]
    for port in ports:
        cmd += ["--port", str(port)]
    return cmd


def call_in_netns(netns_path: str | None, fn: Callable[[], T]) -> T:
    """`fn()` on a short-lived thread inside the netns at `netns_path` (None: this one), from
    any thread (setns is per thread, and the main thread must never move). Its exception is
    raised here."""
    result: list[T] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            with netns.entered(netns_path) if netns_path else contextlib.nullcontext():
                result.append(fn())
        except BaseException as e:  # handed to the caller's thread
            failure.append(e)

    t = threading.Thread(target=work, name="netns-call")
    t.start()
    t.join()
    if failure:
        raise failure[0]
    return result[0]


def listen_in_netns(netns_path: str, ports: Sequence[int]) -> list[socket.socket]:
    """Listening sockets on 127.0.0.1:<port> inside `netns_path` (its `lo` is brought up first)."""
    subprocess.run(
        ["nsenter", f"--net={netns_path}", "ip", "link", "set", "lo", "up"],
        check=True,
        capture_output=True,
    )

    def listen() -> list[socket.socket]:
        made: list[socket.socket] = []
        try:
            for port in ports:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                made.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((LOOPBACK, port))
                s.listen(128)
                s.setblocking(False)
        except BaseException:
            for s in made:
                s.close()
            raise
        return made

    return call_in_netns(netns_path, listen)


def listen_here(address: str, ports: Sequence[int]) -> list[socket.socket]:
    """Listening sockets on address:<port> of this netns; the address need not exist yet
    (IP_FREEBIND: a pod bridge's gateway appears with the node's first pod)."""
    made: list[socket.socket] = []
    try:
        for port in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            made.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
            s.bind((address, port))
            s.listen(128)
            s.setblocking(False)
    except BaseException:
        for s in made:
            s.close()
        raise
    return made


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass


def _handler(port: int) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(LOOPBACK, port)
        except OSError as e:
            log.warning("forward to %s:%d failed: %s", LOOPBACK, port, e)
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            writer.close()

    return handle


async def serve(sockets: Sequence[socket.socket]) -> None:
    servers = []
    for s in sockets:
        port = s.getsockname()[1]
        servers.append(await asyncio.start_server(_handler(port), sock=s))
    log.info("forwarding ports %s", [s.getsockname()[1] for s in sockets])
    await asyncio.gather(*(srv.serve_forever() for srv in servers))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nsforward", description=__doc__)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--netns", help="path of the target network namespace")
    where.add_argument("--address", help="listen on this address of this netns instead")
    p.add_argument("--port", type=int, action="append", required=True, help="port to forward")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.netns:
            sockets = listen_in_netns(args.netns, args.port)
        else:
            sockets = listen_here(args.address, args.port)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"nsforward: cannot listen in {args.netns or args.address}: {e}", file=sys.stderr)
        return 1
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(sockets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
