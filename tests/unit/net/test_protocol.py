"""CNI request parsing, error JSON, wire encoding, netconf checks and names."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from net import install, names
from net.cni import plugin, protocol
from net.cni.protocol import CniError, Request
from net.config import parse_netconf

CONF = {"cniVersion": "1.0.0", "type": "pykubelet-cni", "bridge": "pkb0", "podCIDR": "10.1.0.0/24"}
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/n", "CNI_IFNAME": "eth0"}


def test_parse_request_reads_env_args_and_config() -> None:
    env = {**ENV, "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p"}
    req = protocol.parse_request(env, json.dumps(CONF).encode())
    assert (req.command, req.container_id, req.netns, req.ifname) == ("ADD", "c1", "/n", "eth0")
    assert req.args["K8S_POD_NAME"] == "p"
    assert Request.from_json(json.loads(protocol.encode_message(req.to_json()))) == req


@pytest.mark.parametrize(
    ("env", "stdin", "code"),
    [
        ({**ENV, "CNI_COMMAND": "BOGUS"}, json.dumps(CONF), 4),
        ({**ENV, "CNI_NETNS": ""}, json.dumps(CONF), 4),
        ({**ENV, "CNI_ARGS": "novalue"}, json.dumps(CONF), 4),
        (ENV, "{", 6),
        (ENV, "[1]", 6),
        (ENV, json.dumps({**CONF, "cniVersion": "0.4.0"}), 1),
        (ENV, json.dumps({**CONF, "type": "bridge"}), 7),
        (ENV, json.dumps({k: v for k, v in CONF.items() if k != "cniVersion"}), 7),
    ],
)
def test_bad_requests_give_cni_codes(env: dict[str, str], stdin: str, code: int) -> None:
    with pytest.raises(CniError) as e:
        protocol.parse_request(env, stdin.encode())
    assert e.value.code == code
    err = e.value.to_json()
    assert set(err) == {"cniVersion", "code", "msg", "details"} and err["msg"]


def test_del_needs_no_netns_and_version_needs_no_config() -> None:
    env = {**ENV, "CNI_COMMAND": "DEL", "CNI_NETNS": ""}
    assert protocol.parse_request(env, json.dumps(CONF).encode()).command == "DEL"
    assert protocol.parse_request({"CNI_COMMAND": "VERSION"}, b"").command == "VERSION"


def test_plugin_run_version_and_agent_down(tmp_path: Path) -> None:
    out = io.StringIO()
    assert plugin.run({"CNI_COMMAND": "VERSION"}, io.BytesIO(b""), out) == 0
    assert "1.0.0" in json.loads(out.getvalue())["supportedVersions"]
    out = io.StringIO()
    conf = {**CONF, "socket": str(tmp_path / "missing.sock")}
    assert plugin.run(ENV, io.BytesIO(json.dumps(conf).encode()), out) == 1
    assert json.loads(out.getvalue())["code"] == protocol.E_TRY_AGAIN_LATER


def test_error_round_trip_and_replies() -> None:
    err = CniError(7, "invalid network config", "bridge")
    assert CniError.from_json(err.to_json()).to_json() == err.to_json()
    assert protocol.reply_error(err, "1.0.0") == {"ok": False, "error": err.to_json()}
    assert protocol.reply_ok(None) == {"ok": True, "result": None}
    with pytest.raises(CniError):
        protocol.decode_message(b"\xff")


def test_netconf_and_port_mappings() -> None:
    maps = [{"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}]
    conf = parse_netconf({**CONF, "runtimeConfig": {"portMappings": maps}})
    assert (conf.gateway, conf.prefixlen, conf.cluster_cidr) == ("10.1.0.1", 24, "10.1.0.0/24")
    assert conf.port_mappings[0].host_port == 8080
    for bad in ({"podCIDR": "x"}, {"bridge": "a" * 16}, {"bridge": ""}, {"podCIDR": "fd00::/64"}):
        with pytest.raises(CniError) as e:
            parse_netconf({**CONF, **bad})
        assert e.value.code == protocol.E_INVALID_CONFIG
    with pytest.raises(CniError):
        parse_netconf({**CONF, "runtimeConfig": {"portMappings": [{"hostPort": 0}]}})


def test_names() -> None:
    a, b = names.host_veth_name("c1"), names.host_veth_name("c2")
    assert a != b and a == names.host_veth_name("c1")
    assert a.startswith("pk") and len(a) <= names.IFNAMSIZ
    assert names.pod_alias("ns", "p") == "ns/p"
    assert len(names.hostport_chain("a" * 15)) <= 28


def test_conflist_and_launcher(tmp_path: Path) -> None:
    text = install.conflist_text(
        bridge="pkb0", pod_cidr="10.1.0.0/24", cluster_cidr="10.1.0.0/16", socket=tmp_path / "s"
    )
    doc = json.loads(text)
    assert doc["cniVersion"] == "1.0.0"
    assert doc["plugins"][0]["capabilities"] == {"portMappings": True}
    assert install.write_conflist(tmp_path, text) and not install.write_conflist(tmp_path, text)
    assert install.launcher_text("/usr/bin/python3").startswith("#!/usr/bin/python3 -IS\n")
