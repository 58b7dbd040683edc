"""Termination messages: the terminationMessagePath file, then FallbackToLogsOnError's log tail."""

from __future__ import annotations

from pathlib import Path

from kubelet.runtime import termination

TS = "2026-11-23T14:37:02.123456789Z"


def cri_log(*lines: tuple[str, str, str]) -> bytes:
    """CRI log file text from (stream, tag, content) triples."""
    return "".join(f"{TS} {stream} {tag} {text}\n" for stream, tag, text in lines).encode()


def message(
    tmp_path: Path,
    log: bytes,
    *,
    cri_message: str = "",
    exit_code: int = 1,
    reason: str = "Error",
    policy: str = "FallbackToLogsOnError",
    file_path: str | None = None,
    log_path: str | None = None,
) -> str:
    path = tmp_path / "0.log"
    path.write_bytes(log)
    return termination.message(
        cri_message=cri_message,
        exit_code=exit_code,
        reason=reason,
        policy=policy,
        file_path=file_path,
        log_path=str(path) if log_path is None else log_path,
    )


def test_output_without_final_newline_is_the_message(tmp_path: Path) -> None:
    # `echo -n DONE; false`: containerd writes the unfinished last line with the P tag.
    assert message(tmp_path, cri_log(("stdout", "P", "DONE"))) == "DONE"


def test_full_lines_keep_their_newlines_and_streams_interleave_in_file_order(
    tmp_path: Path,
) -> None:
    log = cri_log(("stdout", "F", "first"), ("stderr", "F", "oops"), ("stdout", "F", "last"))
    assert message(tmp_path, log) == "first\noops\nlast\n"


def test_partial_segments_join(tmp_path: Path) -> None:
    log = cri_log(("stdout", "P", "a long "), ("stdout", "F", "line"))
    assert message(tmp_path, log) == "a long line\n"


def test_only_the_last_80_lines(tmp_path: Path) -> None:
    log = cri_log(*(("stdout", "F", f"line {i}") for i in range(100)))
    text = message(tmp_path, log)
    assert text.splitlines() == [f"line {i}" for i in range(20, 100)]


def test_only_the_last_2048_bytes(tmp_path: Path) -> None:
    log = cri_log(("stdout", "F", "a" * 3000), ("stdout", "F", "end"))
    text = message(tmp_path, log)
    assert len(text) == 2048
    assert text.endswith("a\nend\n")


def test_a_log_longer_than_what_is_read_drops_its_cut_first_line(tmp_path: Path) -> None:
    lines = [("stdout", "F", f"{i:05d} " + "x" * 200) for i in range(400)]
    text = message(tmp_path, cri_log(*lines))
    assert len(text) == 2048
    assert text.endswith("00399 " + "x" * 200 + "\n")
    assert (
        termination.from_log(
            b"cut-off garbage\n" + cri_log(("stdout", "F", "ok")), whole_file=False
        )
        == "ok\n"
    )


def test_malformed_lines_are_skipped(tmp_path: Path) -> None:
    log = b"not a cri line\n" + cri_log(("stdout", "F", "kept"))
    assert message(tmp_path, log) == "kept\n"


def test_no_log_text_unless_the_container_failed_under_the_fallback_policy(
    tmp_path: Path,
) -> None:
    log = cri_log(("stdout", "F", "noise"))
    assert message(tmp_path, log, exit_code=0) == ""
    assert message(tmp_path, log, policy="File") == ""
    assert message(tmp_path, log, reason="ContainerCannotRun") == ""
    assert message(tmp_path, log, log_path="") == ""
    assert message(tmp_path, log, log_path=str(tmp_path / "absent.log")) == ""


def test_the_file_wins_and_only_its_last_4_kib_count(tmp_path: Path) -> None:
    msg = tmp_path / "termination-log"
    msg.write_text("x" * 5000 + "tail")
    log = cri_log(("stdout", "F", "noise"))
    text = message(tmp_path, log, file_path=str(msg))
    assert len(text) == 4096
    assert text.endswith("xtail")


def test_an_empty_or_absent_file_falls_back_to_the_log(tmp_path: Path) -> None:
    empty = tmp_path / "termination-log"
    empty.write_text("")
    log = cri_log(("stdout", "P", "DONE"))
    assert message(tmp_path, log, file_path=str(empty)) == "DONE"
    assert message(tmp_path, log, file_path=str(tmp_path / "absent")) == "DONE"
    assert message(tmp_path, log, file_path=str(empty), exit_code=0) == ""


def test_the_runtime_message_comes_first(tmp_path: Path) -> None:
    log = cri_log(("stdout", "P", "DONE"))
    assert message(tmp_path, log, cri_message="from runtime") == "from runtime: DONE"
    assert message(tmp_path, log, cri_message="from runtime", exit_code=0) == "from runtime"
