"""The mode factory (net.proxy.modes): the one place that turns --proxy-mode into a backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from net.proxy.backend import Unsupported
from net.proxy.modes import BACKENDS, open_backend
from net.proxy.settings import MODES


def test_every_mode_has_a_backend_and_no_other() -> None:
    assert set(BACKENDS) == set(MODES)
    with pytest.raises(Unsupported, match="proxy mode 'userspace': expected one of iptables, "):
        open_backend("userspace")


def test_ipvs_mode_refuses_a_kernel_without_ipvs_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "modules").write_text("nf_conntrack 1 0 - Live 0x0\n")
    with pytest.raises(Unsupported, match="CONFIG_IP_VS") as info:
        open_backend("ipvs", proc=tmp_path)
    assert "\n" not in str(info.value)
