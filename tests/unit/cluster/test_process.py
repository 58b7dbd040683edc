"""Daemons start detached, report readiness or failure with their log, and stop."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster import process


def test_failed_start_names_component_and_log_tail(tmp_path: Path) -> None:
    d = process.Daemon("broken", tmp_path / "run", tmp_path / "logs")
    process.start(d, ["sh", "-c", "echo 'bad flag --frob'; exit 3"])
    with pytest.raises(process.ComponentFailed) as e:
        process.wait_ready(d, lambda: False, timeout=5)
    assert "broken exited" in str(e.value)
    assert "bad flag --frob" in str(e.value)


def test_start_is_idempotent_and_stop_kills(tmp_path: Path) -> None:
    d = process.Daemon("sleeper", tmp_path / "run", tmp_path / "logs")
    pid = process.start(d, ["sleep", "30"])
    assert process.start(d, ["sleep", "30"]) == pid
    assert process.wait_ready(d, lambda: True, timeout=1) >= 0
    assert process.stop(d, grace=2)
    assert d.pid() is None
    assert not process.stop(d)


def test_not_ready_times_out(tmp_path: Path) -> None:
    d = process.Daemon("slow", tmp_path / "run", tmp_path / "logs")
    process.start(d, ["sleep", "30"])
    try:
        with pytest.raises(process.ComponentFailed, match="slow not ready"):
            process.wait_ready(d, lambda: False, timeout=0.3, interval=0.05)
    finally:
        process.stop(d, grace=1)
