"""A container's termination message as upstream computes it: the terminationMessagePath file,
else (FallbackToLogsOnError, failed exit) the tail of its CRI log. Reads files, no CRI calls.
"""

from __future__ import annotations

from kubelet.server import crilog

MAX_MESSAGE_FILE_BYTES = 4096
"""Upstream's MaxContainerTerminationMessageLength: the file's last 4 KiB."""
MAX_MESSAGE_LOG_BYTES = 2048
"""Upstream's MaxContainerTerminationMessageLogLength: at most the log's last 2 KiB ..."""
MAX_MESSAGE_LOG_LINES = 80
"""... of its last 80 lines (MaxContainerTerminationMessageLogLines)."""
LOG_READ_BYTES = 32 * 1024
"""How much of the log's end is read: containerd cuts lines at 16 KiB, so the complete lines in
32 KiB always hold more than MAX_MESSAGE_LOG_BYTES of text."""
FALLBACK_TO_LOGS = "FallbackToLogsOnError"
CANNOT_RUN = "ContainerCannotRun"


def message(
    *,
    cri_message: str,
    exit_code: int,
    reason: str,
    policy: str,
    file_path: str | None,
    log_path: str,
) -> str:
    """The terminated state's message: CRI's message, then ": " and the file's or log's text.

    `file_path` is the host side of the terminationMessagePath mount (None: not mounted).
    """
    fallback = policy == FALLBACK_TO_LOGS and exit_code != 0 and reason != CANNOT_RUN
    text = ""
    if file_path:
        text = _read_end(file_path, MAX_MESSAGE_FILE_BYTES)[0].decode(errors="replace")
    if not text and fallback and log_path:
        raw, whole = _read_end(log_path, LOG_READ_BYTES)
        text = from_log(raw, whole_file=whole)
    if not text:
        return cri_message
    return f"{cri_message}: {text}" if cri_message else text


def from_log(raw: bytes, *, whole_file: bool = True) -> str:
    """The text of the last MAX_MESSAGE_LOG_LINES CRI log lines in `raw`, cut to its last
    MAX_MESSAGE_LOG_BYTES. As upstream: a full line's text ends in a newline, a partial line's
    (one the container did not end, or one longer than the runtime's line limit) does not.

    `raw` is the end of the file; unless `whole_file`, its first line may be cut and is dropped.
    """
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not whole_file and lines:
        lines.pop(0)
    out = bytearray()
    for physical in lines[-MAX_MESSAGE_LOG_LINES:]:
        try:
            line = crilog.parse_line(physical)
        except crilog.LogFormatError:
            continue  # upstream logs and skips a malformed line
        out += line.content if line.partial else line.content + b"\n"
    return bytes(out[-MAX_MESSAGE_LOG_BYTES:]).decode(errors="replace")


def _read_end(path: str, limit: int) -> tuple[bytes, bool]:
    """The file's last `limit` bytes and whether that is all of it; empty if it cannot be read
    (absent: the container never wrote it, or the runtime removed it)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - limit))
            return f.read(limit), size <= limit
    except OSError:
        return b"", True
