"""IPAM store: allocation, release, persistence, exhaustion, idempotency per container ID."""

from __future__ import annotations

from pathlib import Path

import pytest

from net.ipam import IpamError, Store


def test_allocate_skips_network_and_gateway_and_is_idempotent(tmp_path: Path) -> None:
    store = Store(tmp_path, "10.1.0.0/24")
    a, new = store.allocate("c1", "eth0", "ns/a")
    assert (a.ip, new) == ("10.1.0.2", True)
    again, new = store.allocate("c1", "eth0", "ns/a")
    assert (again, new) == (a, False)
    assert store.allocate("c2", "eth0")[0].ip == "10.1.0.3"
    assert store.gateway == "10.1.0.1"


def test_release_and_unknown_release(tmp_path: Path) -> None:
    store = Store(tmp_path, "10.1.0.0/24")
    a, _ = store.allocate("c1", "eth0")
    assert store.release("c1", "eth0") == a
    assert store.release("c1", "eth0") is None
    assert store.release("never", "eth0") is None
    assert store.get("c1", "eth0") is None
    # round-robin: the freed IP is not handed out again at once
    assert store.allocate("c2", "eth0")[0].ip == "10.1.0.3"


def test_persists_across_instances(tmp_path: Path) -> None:
    Store(tmp_path, "10.1.0.0/24").allocate("c1", "eth0", "ns/a")
    other = Store(tmp_path, "10.1.0.0/24")
    assert other.allocate("c1", "eth0")[0].ip == "10.1.0.2"
    assert other.allocate("c2", "eth0")[0].ip == "10.1.0.3"
    assert [a.pod for a in other.all()] == ["ns/a", ""]


def test_exhaustion_is_an_error(tmp_path: Path) -> None:
    store = Store(tmp_path, "10.1.0.0/29")  # .2 - .6 usable
    ips = [store.allocate(f"c{i}", "eth0")[0].ip for i in range(5)]
    assert ips == [f"10.1.0.{i}" for i in range(2, 7)]
    with pytest.raises(IpamError, match="no free IP"):
        store.allocate("c9", "eth0")
    store.release("c0", "eth0")
    assert store.allocate("c9", "eth0")[0].ip == "10.1.0.2"


def test_malformed_store_and_tiny_cidr(tmp_path: Path) -> None:
    (tmp_path / "allocations.json").write_text("{garbage")
    with pytest.raises(IpamError, match="unreadable"):
        Store(tmp_path, "10.1.0.0/24").allocate("c", "eth0")
    with pytest.raises(IpamError):
        Store(tmp_path, "10.1.0.0/31")
