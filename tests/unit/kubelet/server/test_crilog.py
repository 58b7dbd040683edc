"""CRI log parsing and selection: timestamps, partial lines, since/tail/limitBytes, options."""

from __future__ import annotations

import pytest

from kubelet.server import crilog
from kubelet.server.crilog import Entry, Joiner, LogOptions, entries, parse_line, select

T0 = "2024-05-01T10:00:00.000000001Z"
T0_NS = 1714557600_000000001


def test_parse_timestamp_nanoseconds_and_offsets() -> None:
    assert crilog.parse_timestamp(T0.encode()) == T0_NS
    assert crilog.parse_timestamp(b"2024-05-01T12:00:00.000000001+02:00") == T0_NS
    assert crilog.parse_timestamp(b"2024-05-01T10:00:00Z") == T0_NS - 1
    assert crilog.format_timestamp(T0_NS) == T0
    with pytest.raises(crilog.LogFormatError):
        crilog.parse_timestamp(b"yesterday")


def test_parse_line_fields() -> None:
    line = parse_line(f"{T0} stderr F hello world\n".encode())
    assert (line.ts_ns, line.stream, line.partial, line.content) == (
        T0_NS,
        "stderr",
        False,
        b"hello world",
    )
    assert parse_line(f"{T0} stdout P ".encode()).content == b""
    with pytest.raises(crilog.LogFormatError):
        parse_line(b"just text")


def test_partial_lines_are_joined_per_stream() -> None:
    raw = [
        f"{T0} stdout P aaa".encode(),
        b"2024-05-01T10:00:01Z stderr F err",
        b"2024-05-01T10:00:02Z stdout P bbb",
        b"2024-05-01T10:00:03Z stdout F ccc",
    ]
    got = list(entries(raw, Joiner()))
    assert [(e.stream, e.content) for e in got] == [
        ("stderr", b"err\n"),
        ("stdout", b"aaabbbccc\n"),
    ]
    assert got[1].ts_ns == T0_NS


def test_dangling_partial_is_flushed_without_newline() -> None:
    j = Joiner()
    assert list(entries([f"{T0} stdout P half".encode()], j)) == []
    assert j.flush() == [Entry(T0_NS, "stdout", b"half")]


def test_malformed_lines_are_skipped() -> None:
    raw = [b"garbage", f"{T0} stdout F ok".encode(), b""]
    assert [e.content for e in entries(raw, Joiner())] == [b"ok\n"]


def test_split_complete_keeps_line_being_written() -> None:
    assert crilog.split_complete(b"a\nb\nc") == ([b"a", b"b"], b"c")
    assert crilog.split_complete(b"abc") == ([], b"abc")


def _entries(n: int) -> list[Entry]:
    return [Entry(i * 1_000_000_000, "stdout", f"l{i}\n".encode()) for i in range(n)]


def test_select_tail_since_and_streams() -> None:
    es = _entries(5)
    assert [e.content for e in select(es, LogOptions(tail_lines=2))] == [b"l3\n", b"l4\n"]
    assert select(es, LogOptions(tail_lines=0)) == []
    assert [e.content for e in select(es, LogOptions(since_ns=3_000_000_000))] == [
        b"l3\n",
        b"l4\n",
    ]
    both = LogOptions(since_ns=1_000_000_000, tail_lines=10)
    assert len(select(es, both)) == 4
    assert select(es, LogOptions(streams=frozenset({"stderr"}))) == []


def test_limiter_cuts_mid_line() -> None:
    lim = crilog.Limiter(5)
    assert lim.take(b"abc\n") == b"abc\n"
    assert lim.take(b"def\n") == b"d"
    assert lim.spent and lim.take(b"x") == b""
    assert crilog.Limiter(None).take(b"all") == b"all"


def test_render_with_timestamps() -> None:
    e = Entry(T0_NS, "stdout", b"x\n")
    assert crilog.render(e, LogOptions(timestamps=True)) == f"{T0} x\n".encode()
    assert crilog.render(e, LogOptions()) == b"x\n"


def test_parse_options() -> None:
    now = 100 * 1_000_000_000
    opts = crilog.parse_options(
        {"follow": "true", "tailLines": "3", "sinceSeconds": "10", "limitBytes": "7"}, now
    )
    assert opts.follow and opts.tail_lines == 3 and opts.limit_bytes == 7
    assert opts.since_ns == 90 * 1_000_000_000
    assert crilog.parse_options({"sinceTime": T0}, now).since_ns == T0_NS
    assert crilog.parse_options({"stream": "Stderr"}, now).streams == frozenset({"stderr"})


@pytest.mark.parametrize(
    "query",
    [
        {"tailLines": "-1"},
        {"tailLines": "x"},
        {"limitBytes": "0"},
        {"sinceSeconds": "0"},
        {"sinceSeconds": "5", "sinceTime": T0},
        {"sinceTime": "not a time"},
        {"follow": "maybe"},
        {"stream": "Both"},
        {"stream": "Stdout", "tailLines": "1"},
    ],
)
def test_parse_options_refuses_bad_values(query: dict[str, str]) -> None:
    with pytest.raises(crilog.OptionError):
        crilog.parse_options(query, 0)
