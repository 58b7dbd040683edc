"""The `pykubelet net rules|explain|trace` subcommands: read the running proxy's /debug views and
print them as a readable table or as JSON (-o json). No rule logic here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_ADDRESS = "127.0.0.1:10249"


class ViewError(Exception):
    """The proxy could not be asked, or said no; the message is for the user."""


def fetch(address: str, path: str, params: Mapping[str, str] | None = None) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    url = f"http://{address}{path}{query}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read()).get("error", "")
        except (ValueError, AttributeError):
            msg = ""
        raise ViewError(msg or f"{url}: HTTP {e.code}") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ViewError(
            f"cannot reach the proxy's metrics address {address} ({reason}); is `pykubelet "
            "proxy` running here? (--metrics-address chooses another)"
        ) from e
    except ValueError as e:
        raise ViewError(f"{url}: not JSON: {e}") from e


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _clock(t: float) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms"


def _short(items: Sequence[str], n: int = 3) -> str:
    if not items:
        return "-"
    more = f" +{len(items) - n} more" if len(items) > n else ""
    return ",".join(items[:n]) + more


def format_rules(data: Mapping[str, Any]) -> str:
    head = (
        f"node {data.get('node')}  mode {data.get('mode')}  backend {data.get('backend')}  "
        f"rules {data.get('ruleCount')}  synced {'yes' if data.get('synced') else 'no'}"
    )
    rows = [
        (
            _clock(r["time"]),
            _ms(r["duration"]),
            "full" if r["full"] else "partial",
            r["lines"],
            r["services"],
            _short(r["changed"]),
            len(r["removed"]),
            r["conntrack_flushed"],
            _short(r["reasons"], 2),
            r["error"] or "-",
        )
        for r in data.get("history", [])
    ]
    table = _table(
        (
            "TIME",
            "DURATION",
            "SYNC",
            str(data.get("sizeUnit") or "lines").upper(),  # nftables mode: ops of the batch
            "SERVICES",
            "CHANGED",
            "CHAINS REMOVED",
            "CT FLUSHED",
            "WHY",
            "ERROR",
        ),
        rows,
    )
    return f"{head}\n{table}"


def format_explain(data: Mapping[str, Any]) -> str:
    """The rule model's own readable text (see net/proxy/explain.py)."""
    return str(data.get("text") or json.dumps(data, indent=2)).rstrip("\n")


def format_trace(data: Mapping[str, Any]) -> str:
    """The rule model's own readable text (see net/proxy/trace.py)."""
    return str(data.get("text") or json.dumps(data, indent=2)).rstrip("\n")


def _show(args: argparse.Namespace, data: Any, fmt: Any) -> int:
    if args.output == "json":
        print(json.dumps(data, indent=2))
    else:
        print(fmt(data))
    return 0


def run_rules(args: argparse.Namespace) -> int:
    params = {"text": "1"} if args.with_text else None
    data = fetch(args.metrics_address, "/debug/rules", params)
    if args.output == "json" or not args.with_text:
        return _show(args, data, format_rules)
    print(format_rules(data))
    newest = next((r for r in data.get("history", []) if r.get("text")), None)
    if newest is not None:
        what = data.get("textKind") or "restore input"
        print(f"\n# {what} of the sync at {_clock(newest['time'])}")
        print(newest["text"], end="")
    return 0


def run_explain(args: argparse.Namespace) -> int:
    if "/" not in args.name:
        raise ViewError(f'"{args.name}": expected NAMESPACE/NAME')
    data = fetch(args.metrics_address, "/debug/explain", {"svc": args.name})
    return _show(args, data, format_explain)


def run_trace(args: argparse.Namespace) -> int:
    host, sep, port = args.dst.rpartition(":")
    if not sep or not port.isdigit():
        raise ViewError(f'--dst "{args.dst}": expected IP:PORT')
    params = {"src": args.src, "dst": host, "port": port, "proto": args.proto}
    return _show(args, fetch(args.metrics_address, "/debug/trace", params), format_trace)


def _guard(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            code: int = func(args)
            return code
        except ViewError as e:
            print(f"pykubelet net {args.net_command}: {e}", file=sys.stderr)
            return 1

    return run


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--metrics-address",
        default=DEFAULT_ADDRESS,
        help=f"host:port of the proxy's metrics server ({DEFAULT_ADDRESS})",
    )
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rules = sub.add_parser("rules", help="the last applied rulesets of the Service proxy")
    _common(rules)
    rules.add_argument(
        "--with-text",
        action="store_true",
        help="also the iptables-restore input (the newest one; with -o json each one kept)",
    )
    rules.set_defaults(func=_guard(run_rules))
    explain = sub.add_parser("explain", help="how a Service's addresses reach its endpoints")
    explain_sub = explain.add_subparsers(dest="kind", required=True)
    svc = explain_sub.add_parser("svc", help="explain a Service")
    svc.add_argument("name", metavar="NAMESPACE/NAME")
    _common(svc)
    svc.set_defaults(func=_guard(run_explain))
    trace = sub.add_parser("trace", help="walk the Service rules for one packet")
    trace.add_argument("--src", required=True, help="source IP")
    trace.add_argument("--dst", required=True, help="destination IP:PORT")
    trace.add_argument("--proto", choices=("tcp", "udp", "sctp"), default="tcp")
    _common(trace)
    trace.set_defaults(func=_guard(run_trace))


def main_for_tests(argv: list[str]) -> int:
    """Parse `argv` as `pykubelet net ARGV` would and run it."""
    parser = argparse.ArgumentParser(prog="pykubelet net")
    add_parsers(parser.add_subparsers(dest="net_command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code
