"""The `kubelet` console script: --version as kubeadm's preflight reads it, -h, and one-line
errors with a non-zero exit for a bad flag, a bad config file or a node with swap on."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelet import command, swap
from kubelet.config import RunConfig


@pytest.mark.parametrize("argv", [["--version"], ["--version=true"], ["--version", "--v=3"]])
def test_version_prints_the_release_kubeadm_expects(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert command.main(argv) == 0
    assert capsys.readouterr().out == "Kubernetes v1.36.3\n"


def test_version_raw(capsys: pytest.CaptureFixture[str]) -> None:
    assert command.main(["--version=raw"]) == 0
    assert capsys.readouterr().out.startswith('version.Info{Major:"1", Minor:"36", GitVersion:')


def test_help_lists_the_upstream_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        command.main(["-h"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--bootstrap-kubeconfig",
        "--config-dir",
        "--fail-swap-on",
        "--housekeeping-interval",
    ):
        assert flag in out


def test_a_bad_config_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(command, "configure_logging", lambda level: None)
    assert command.main([f"--config={tmp_path / 'missing.yaml'}"]) == 1
    err = capsys.readouterr().err
    assert err == f"kubelet: {tmp_path / 'missing.yaml'}: kubelet config file not found\n"


def test_swap_on_stops_start_up_with_upstreams_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(config: RunConfig) -> None:
        raise swap.SwapError(swap.SWAP_ON)

    monkeypatch.setattr(command, "start", refuse)
    monkeypatch.setattr(command, "configure_logging", lambda level: None)
    assert command.main(["--hostname-override=n1"]) == 1
    assert capsys.readouterr().err == f"kubelet: failed to run Kubelet: {swap.SWAP_ON}\n"
