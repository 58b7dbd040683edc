"""The CRI container log format as pure functions: parse `<RFC3339Nano> <stream> <P|F> <text>`
lines, join partial lines, select by since/tail/limitBytes, format output. No I/O, no asyncio.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

STDOUT = "stdout"
STDERR = "stderr"

_TS = re.compile(
    rb"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)


class LogFormatError(ValueError):
    """A line that is not in the CRI log format."""


@dataclass(frozen=True)
class LogLine:
    """One physical line of a CRI log file."""

    ts_ns: int
    """Nanoseconds since the epoch (UTC)."""
    stream: str
    partial: bool
    content: bytes
    """The text without the trailing newline."""


@dataclass(frozen=True)
class Entry:
    """One logical line the user sees: partial lines joined, with its first segment's time."""

    ts_ns: int
    stream: str
    content: bytes
    """The text with its trailing newline (absent only when a partial line ends the file)."""


@dataclass(frozen=True)
class LogOptions:
    """What `/containerLogs` was asked for, validated (see parse_options)."""

    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_ns: int | None = None
    """Show only lines at or after this time (from sinceSeconds or sinceTime)."""
    streams: frozenset[str] = frozenset({STDOUT, STDERR})


def parse_timestamp(text: bytes) -> int:
    """RFC3339 / RFC3339Nano to nanoseconds since the epoch."""
    m = _TS.match(text)
    if m is None:
        raise LogFormatError(f"bad timestamp {text[:40]!r}")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or b"").ljust(9, b"0")
    zone = m.group(8)
    offset = 0
    if zone != b"Z":
        sign = -1 if zone[:1] == b"-" else 1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - offset
    return secs * 1_000_000_000 + int(frac)


def format_timestamp(ts_ns: int) -> str:
    """Upstream's output form: RFC3339, nine fraction digits, UTC (`...T10:00:00.000000001Z`)."""
    secs, nanos = divmod(ts_ns, 1_000_000_000)
    t = time.gmtime(secs)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{nanos:09d}Z"
    )


def parse_line(raw: bytes) -> LogLine:
    """One line of a CRI log file (with or without its trailing newline)."""
    raw = raw.removesuffix(b"\n")
    parts = raw.split(b" ", 3)
    if len(parts) < 3:
        raise LogFormatError(f"not a CRI log line: {raw[:80]!r}")
    ts, stream, tag = parts[0], parts[1].decode("ascii", "replace"), parts[2]
    if stream not in (STDOUT, STDERR):
        raise LogFormatError(f"unknown stream {stream!r}")
    tags = tag.split(b":")
    if tags[0] not in (b"P", b"F"):
        raise LogFormatError(f"unknown tag {tag!r}")
    content = parts[3] if len(parts) == 4 else b""
    return LogLine(parse_timestamp(ts), stream, tags[0] == b"P", content)


@dataclass
class Joiner:
    """Joins partial lines per stream into Entries; feed physical lines in file order."""

    pending: dict[str, tuple[int, bytearray]] = field(default_factory=dict)

    def feed(self, line: LogLine) -> Entry | None:
        start = self.pending.get(line.stream)
        if line.partial:
            if start is None:
                self.pending[line.stream] = (line.ts_ns, bytearray(line.content))
            else:
                start[1].extend(line.content)
            return None
        if start is None:
            return Entry(line.ts_ns, line.stream, line.content + b"\n")
        del self.pending[line.stream]
        return Entry(start[0], line.stream, bytes(start[1]) + line.content + b"\n")

    def flush(self) -> list[Entry]:
        """Partial lines left at the end (the container ended mid-line)."""
        out = [Entry(ts, stream, bytes(buf)) for stream, (ts, buf) in self.pending.items()]
        self.pending.clear()
        return sorted(out, key=lambda e: e.ts_ns)


def split_complete(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete physical lines of `buffer` and the incomplete rest (a line still being written)."""
    cut = buffer.rfind(b"\n")
    if cut < 0:
        return [], buffer
    return buffer[: cut + 1].splitlines(), buffer[cut + 1 :]


def entries(raw_lines: Iterable[bytes], joiner: Joiner) -> Iterator[Entry]:
    """Entries from physical lines; malformed lines are skipped (upstream logs and skips them)."""
    for raw in raw_lines:
        if not raw.strip():
            continue
        try:
            line = parse_line(raw)
        except LogFormatError:
            continue
        entry = joiner.feed(line)
        if entry is not None:
            yield entry


def select(found: Sequence[Entry], opts: LogOptions) -> list[Entry]:
    """The entries a request shows from what is already in the file: streams, since, then tail."""
    kept = [
        e
        for e in found
        if e.stream in opts.streams and (opts.since_ns is None or e.ts_ns >= opts.since_ns)
    ]
    if opts.tail_lines is not None:
        kept = kept[len(kept) - opts.tail_lines :] if opts.tail_lines > 0 else []
    return kept


def wanted(entry: Entry, opts: LogOptions) -> bool:
    """Whether a new entry (while following) is shown."""
    return entry.stream in opts.streams and (opts.since_ns is None or entry.ts_ns >= opts.since_ns)


def render(entry: Entry, opts: LogOptions) -> bytes:
    if opts.timestamps:
        return format_timestamp(entry.ts_ns).encode() + b" " + entry.content
    return entry.content


@dataclass
class Limiter:
    """limitBytes: passes bytes until the budget is spent, cutting the last chunk (as upstream)."""

    remaining: int | None

    def take(self, data: bytes) -> bytes:
        if self.remaining is None:
            return data
        data = data[: self.remaining]
        self.remaining -= len(data)
        return data

    @property
    def spent(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


class OptionError(ValueError):
    """A query value /containerLogs refuses (HTTP 400)."""


def _bool(name: str, value: str | None) -> bool:
    if value is None or value == "":
        return False
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise OptionError(f"{name}: invalid boolean value {value!r}")


def _int(name: str, value: str | None, minimum: int) -> int | None:
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except ValueError:
        raise OptionError(f"{name}: invalid integer value {value!r}") from None
    if n < minimum:
        raise OptionError(f"{name}: must be greater than or equal to {minimum}")
    return n


def parse_options(query: dict[str, str], now_ns: int) -> LogOptions:
    """PodLogOptions from the query string, checked as upstream validates them."""
    since_seconds = _int("sinceSeconds", query.get("sinceSeconds"), 1)
    since_time = query.get("sinceTime") or None
    if since_seconds is not None and since_time is not None:
        raise OptionError("at most one of sinceTime or sinceSeconds may be specified")
    since_ns: int | None = None
    if since_seconds is not None:
        since_ns = now_ns - since_seconds * 1_000_000_000
    elif since_time is not None:
        try:
            since_ns = parse_timestamp(since_time.encode())
        except LogFormatError:
            raise OptionError(f"sinceTime: invalid RFC3339 time {since_time!r}") from None
    stream = query.get("stream") or "All"
    streams = {"All": frozenset({STDOUT, STDERR}), "Stdout": frozenset({STDOUT})}
    streams["Stderr"] = frozenset({STDERR})
    if stream not in streams:
        raise OptionError(f"stream: must be one of All, Stdout, Stderr, not {stream!r}")
    tail = _int("tailLines", query.get("tailLines"), 0)
    if tail is not None and stream != "All":
        raise OptionError("tailLines cannot be combined with a single stream")
    return LogOptions(
        follow=_bool("follow", query.get("follow")),
        previous=_bool("previous", query.get("previous")),
        timestamps=_bool("timestamps", query.get("timestamps")),
        tail_lines=tail,
        limit_bytes=_int("limitBytes", query.get("limitBytes"), 1),
        since_ns=since_ns,
        streams=streams[stream],
    )
