"""Unit tests of the `pykubelet net pod` pieces that need no kernel: the table renderer and
the netns path taken from PodSandboxStatus info."""

from __future__ import annotations

import json
from typing import Any

import pytest

from net.views.pod_format import render
from net.views.pod_lookup import netns_from_info


def link(idx: int, name: str, kind: str, addrs: list[str], **kw: Any) -> dict[str, Any]:
    base = {
        "ifindex": idx,
        "name": name,
        "kind": kind,
        "mac": f"0a:00:00:00:00:{idx:02x}",
        "mtu": 1500,
        "state": "UP",
        "alias": "",
        "master": "",
        "peerIfindex": 0,
        "addresses": addrs,
    }
    return {**base, **kw}


DATA: dict[str, Any] = {
    "pod": {
        "namespace": "default",
        "name": "web",
        "uid": "u-1",
        "sandbox": "abcdef0123456789",
        "ip": "10.9.1.5",
        "hostNetwork": False,
    },
    "podSide": {
        "netns": "/run/ns/cni-1",
        "interfaces": [link(2, "eth0", "veth", ["10.9.1.5/24"], peerIfindex=7)],
        "routes": [
            {
                "dst": "default",
                "gateway": "10.9.1.1",
                "dev": "eth0",
                "scope": "universe",
                "protocol": "boot",
                "prefsrc": "",
            },
        ],
        "neighbours": [
            {"ip": "10.9.1.1", "mac": "0a:00:00:00:00:09", "dev": "eth0", "state": "REACHABLE"}
        ],
    },
    "hostSide": {
        "veth": link(
            7, "pk0123456789a", "veth", [], master="pykbr0", alias="default/web", peerIfindex=2
        ),
        "bridge": link(9, "pykbr0", "bridge", ["10.9.1.1/24"]),
        "routes": [
            {
                "dst": "10.9.1.0/24",
                "gateway": "",
                "dev": "pykbr0",
                "scope": "link",
                "protocol": "kernel",
                "prefsrc": "10.9.1.1",
            }
        ],
        "routeToPod": {"dst": "10.9.1.5", "dev": "pykbr0", "gateway": "", "prefsrc": "10.9.1.1"},
        "neighbours": [],
    },
    "hostPorts": [
        {
            "chain": "PYK-pykbr0-HP",
            "protocol": "tcp",
            "hostIP": "",
            "hostPort": 8080,
            "to": "10.9.1.5:80",
        }
    ],
}


def test_render_shows_both_sides() -> None:
    text = render(DATA)
    lines = text.splitlines()
    assert lines[0].startswith("pod default/web  uid u-1  sandbox abcdef0123456  ip 10.9.1.5")
    assert any(ln.startswith("pod ") and "eth0" in ln and "peer ifindex 7" in ln for ln in lines)
    veth = next(ln for ln in lines if "pk0123456789a" in ln)
    assert "bridge pykbr0" in veth and "alias default/web" in veth
    assert "host route to 10.9.1.5: dev pykbr0 src 10.9.1.1" in text
    assert any("tcp" in ln and "8080" in ln and "10.9.1.5:80" in ln for ln in lines)
    assert "REACHABLE" in text


def test_render_host_network_pod() -> None:
    data = {"pod": {**DATA["pod"], "hostNetwork": True, "netns": "host"}}
    assert "network: host" in render(data)


def test_render_without_host_veth_says_so() -> None:
    data = {
        **DATA,
        "hostSide": {
            "veth": None,
            "bridge": None,
            "routes": [],
            "routeToPod": None,
            "neighbours": [],
        },
        "hostPorts": [],
    }
    text = render(data)
    assert "host end of the veth: not found" in text and "HOSTPORTS\n(none)" in text


def test_netns_from_info() -> None:
    spec = {
        "runtimeSpec": {
            "linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/x/ns"}]}
        }
    }
    assert netns_from_info({"info": json.dumps(spec)}) == "/x/ns"
    assert netns_from_info({"info": "not json"}) == ""
    assert netns_from_info({}) == ""


def test_a_netlink_refusal_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The pod can vanish between the CRI lookup and reading its netns: the kernel's refusal
    (pyroute2's NetlinkError is not an OSError) is reported, not a traceback."""
    import argparse

    from pyroute2.netlink.exceptions import NetlinkError

    from net.views import pod_command, pod_lookup, pod_net

    sandbox = pod_lookup.PodSandbox("ns", "web", "uid", "sb1", "/run/netns/x", "10.0.0.2", False)
    monkeypatch.setattr(pod_lookup, "find", lambda *a, **k: sandbox)

    def refuse(sb: Any) -> Any:
        raise NetlinkError(101, "Network is unreachable")

    monkeypatch.setattr(pod_net, "collect", refuse)
    args = argparse.Namespace(pod="ns/web", runtime_endpoint="unix:///nowhere", output="table")
    assert pod_command.run(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("pykubelet net pod: ns/web: ") and "unreachable" in err
    assert err.count("\n") == 1
