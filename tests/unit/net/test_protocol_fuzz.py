"""Property-based fuzzing (hypothesis) of the CNI plugin's stdin/env parsing: any input gives
a parsed request or a CNI error with a code, and a rejected request never reaches the agent."""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from net.cni import plugin, protocol
from net.cni.protocol import CniError
from net.config import parse_netconf

CONF: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "type": "pykubelet-cni",
    "bridge": "pkb0",
    "podCIDR": "10.1.0.0/24",
}
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/n", "CNI_IFNAME": "eth0"}
CODES = {1, 2, 3, 4, 5, 6, 7, 11, 999}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
# configs near the valid one: each key replaced, dropped or joined by a random one
near_configs = st.builds(
    lambda base, drop, extra: {**{k: v for k, v in base.items() if k not in drop}, **extra},
    st.fixed_dictionaries({k: st.one_of(st.just(v), json_values) for k, v in CONF.items()}),
    st.sets(st.sampled_from(sorted(CONF))),
    st.dictionaries(
        st.sampled_from(["portMappings", "runtimeConfig", "dns", "clusterCIDR", "mtu", "socket"]),
        json_values,
        max_size=3,
    ),
)
envs = st.fixed_dictionaries(
    {k: st.one_of(st.just(v), st.text(max_size=12)) for k, v in ENV.items()},
    optional={"CNI_ARGS": st.text(max_size=30), "CNI_PATH": st.text(max_size=10)},
)


def _check_error(e: CniError) -> None:
    err = e.to_json("1.0.0")
    assert isinstance(err["code"], int) and err["code"] in CODES and err["msg"]
    json.dumps(err)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), envs)
def test_random_bytes_never_crash_the_parser(stdin: bytes, env: dict[str, str]) -> None:
    try:
        protocol.parse_request(env, stdin)
    except CniError as e:
        _check_error(e)


@settings(max_examples=400, deadline=None)
@given(near_configs, envs)
def test_near_valid_configs_parse_or_give_cni_error(
    conf: dict[str, Any], env: dict[str, str]
) -> None:
    try:
        req = protocol.parse_request(env, json.dumps(conf).encode())
        if req.command in ("ADD", "CHECK", "DEL"):
            parse_netconf(req.config)  # what the agent does next with it
    except CniError as e:
        _check_error(e)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_truncated_config_is_a_decode_error(data: st.DataObject) -> None:
    raw = json.dumps(CONF).encode()
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    with pytest.raises(CniError) as e:
        protocol.parse_request(ENV, raw[:cut])
    assert e.value.code == protocol.E_DECODE


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_agent_reply_decoding_survives_garbage(raw: bytes) -> None:
    try:
        protocol.decode_message(raw)
    except CniError as e:
        _check_error(e)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[str, list[bytes]]]:
    """A fake agent socket that records every request it gets and answers ok."""
    path = str(tmp_path / "agent.sock")
    got: list[bytes] = []
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn:
                chunks = []
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
                got.append(b"".join(chunks))
                conn.sendall(protocol.encode_message(protocol.reply_ok(None)))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield path, got
    stop.set()
    t.join()
    srv.close()


@pytest.mark.parametrize(
    "stdin",
    [
        b"",
        b"\xff\xfe garbage",
        b'{"cniVersion": "1.0.0", "type": "pykubelet-cni", "socket": "',
        b'{"cniVersion": "0.3.1", "type": "pykubelet-cni", "socket": "SOCK"}',
        b'{"cniVersion": "9.9.9", "type": "pykubelet-cni", "socket": "SOCK"}',
        b'{"type": "pykubelet-cni", "socket": "SOCK"}',
        b'["cniVersion", "1.0.0"]',
    ],
)
def test_bad_config_gives_error_and_never_reaches_the_agent(
    agent: tuple[str, list[bytes]], stdin: bytes
) -> None:
    path, got = agent
    out = io.StringIO()
    code = plugin.run(ENV, io.BytesIO(stdin.replace(b"SOCK", path.encode())), out)
    err = json.loads(out.getvalue())
    assert code == 1 and isinstance(err["code"], int) and err["msg"]
    assert got == []
    good = json.dumps({**CONF, "socket": path}).encode()  # the fake agent does answer
    assert plugin.run({**ENV, "CNI_COMMAND": "DEL"}, io.BytesIO(good), io.StringIO()) == 0
    assert len(got) == 1


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(conf=near_configs, truncate=st.booleans())
def test_fuzzed_configs_reach_the_agent_only_when_valid(
    agent: tuple[str, list[bytes]], conf: dict[str, Any], truncate: bool
) -> None:
    path, got = agent
    raw = json.dumps({**conf, "socket": path}).encode()
    raw = raw[: len(raw) // 2] if truncate else raw
    try:
        protocol.parse_request(ENV, raw)
        valid = True
    except CniError:
        valid = False
    before = len(got)
    out = io.StringIO()
    code = plugin.run(ENV, io.BytesIO(raw), out)
    assert len(got) == before + (1 if valid else 0)
    if not valid:
        assert code == 1 and isinstance(json.loads(out.getvalue())["code"], int)
