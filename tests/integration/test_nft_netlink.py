"""net/nft against the real kernel and nft 1.0.6, each side in its own scratch netns: the netlink
batch must leave exactly what `nft -f` of the same ops' text leaves (as `nft list` prints it)."""

from __future__ import annotations

import itertools
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from net import netns
from net.nft import ir
from net.nft.netlink import NftError, NftNetlink
from net.nft.text import ops_text, table_text
from tests.unit.net.nft.tables import SVC_KEY, every_construct, table_ops

F = ir.Field
K = ir.VerdictKind
_counter = itertools.count()

pytestmark = pytest.mark.usefixtures("root_required")


def _ns_run(ns: str, *cmd: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, *cmd], input=stdin, capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} in {ns} failed: {proc.stderr.strip()}")
    return proc.stdout


def nft_load(ns: str, text: str) -> None:
    _ns_run(ns, "nft", "-f", "-", stdin=text)


def listing(ns: str, table: str | None = None) -> str:
    if table is None:
        return _ns_run(ns, "nft", "list", "ruleset")
    return _ns_run(ns, "nft", "list", "table", "ip", table)


def _open(path: str) -> NftNetlink:
    with netns.entered(path):
        return NftNetlink()  # the socket stays in the netns it was made in


@pytest.fixture
def make_ns() -> Iterator[Callable[[], str]]:
    """Scratch netns named pkh1-<pid>-<n>, deleted at teardown whatever happened."""
    made: list[str] = []

    def make() -> str:
        name = f"pkh1-{os.getpid()}-{next(_counter)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        made.append(name)
        return name

    try:
        yield make
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def netlink(make_ns: Callable[[], str]) -> Iterator[Callable[[], tuple[str, NftNetlink]]]:
    """Opens NftNetlink sockets, each in a fresh netns; closed at teardown."""
    opened: list[NftNetlink] = []

    def make() -> tuple[str, NftNetlink]:
        ns = make_ns()
        with ThreadPoolExecutor(1) as pool:
            nl = pool.submit(_open, f"/run/netns/{ns}").result()
        opened.append(nl)
        return ns, nl

    try:
        yield make
    finally:
        for nl in opened:
            nl.close()


def test_every_construct_lists_as_nft_loads_it(
    make_ns: Callable[[], str], netlink: Callable[[], tuple[str, NftNetlink]]
) -> None:
    t = every_construct()
    ops = table_ops(t)
    by_ops_text, by_table_text = make_ns(), make_ns()
    nft_load(by_ops_text, ops_text(ops))
    nft_load(by_table_text, table_text(t))
    ns, nl = netlink()
    nl.apply(ops)
    expected = listing(by_ops_text, t.name)
    assert listing(ns, t.name) == expected
    assert listing(by_table_text, t.name) == expected
    for part in ("vmap @service-ips", "dnat to 10.1.0.5:8080", 'comment "endpoint a"', "3h"):
        assert part in expected
    # nft reads what we wrote back the same way: a re-listing as text reloads identically
    again = make_ns()
    nft_load(again, expected)
    assert listing(again, t.name) == expected


def test_full_batch_twice_is_idempotent_like_nft(
    make_ns: Callable[[], str], netlink: Callable[[], tuple[str, NftNetlink]]
) -> None:
    """The proxy's full sync: add (not create) everything, flush tables and data sets, refill."""
    t = every_construct("pkh1-full")
    ops: list[ir.Op] = [ir.AddTable(t.name), ir.FlushTable(t.name)]
    ops += [ir.AddChain(t.name, c) for c, _r in t.chains]
    for s, _e in t.sets:
        ops.append(ir.AddSet(t.name, s))
        if s.timeout is None:
            ops.append(ir.FlushSet(t.name, s.name))
    ops += [ir.AddElements(t.name, s.name, e) for s, e in t.sets if e]
    ops += [ir.AddRule(t.name, c.name, r) for c, rules in t.chains for r in rules]
    a = make_ns()
    ns, nl = netlink()
    for _ in range(2):
        nft_load(a, ops_text(ops))
        nl.apply(ops)
        assert listing(ns) == listing(a)
    assert listing(a).count("nat-prerouting") == 1


PARTIAL: list[ir.Op] = [
    ir.AddChain("pkh1-all", ir.Chain("svc-c")),
    ir.AddChain("pkh1-all", ir.Chain("ep-c")),
    ir.AddRule("pkh1-all", "svc-c", ir.Rule((ir.Verdict(K.GOTO, "ep-c"),))),
    ir.AddRule("pkh1-all", "ep-c", ir.Rule((ir.Cmp(F.L4PROTO, "tcp"), ir.Dnat("10.1.0.9", 81)))),
    ir.FlushChain("pkh1-all", "ep-b"),
    ir.AddRule("pkh1-all", "ep-b", ir.Rule((ir.Dnat("10.1.0.7"),), comment="moved")),
    ir.DeleteElements(
        "pkh1-all",
        "service-ips",
        (ir.Element(("10.96.0.2", "udp", 53), ir.Verdict(K.JUMP, "svc-a")),),
    ),
    ir.AddElements(
        "pkh1-all",
        "service-ips",
        (ir.Element(("10.96.0.5", "tcp", 8443), ir.Verdict(K.GOTO, "svc-c")),),
    ),
    ir.AddElements("pkh1-all", "no-endpoints", (ir.Element(("10.96.0.5", "udp", 53)),)),
    ir.DeleteElements("pkh1-all", "addrs", (ir.Element(("10.96.0.9",)),)),
    ir.FlushSet("pkh1-all", "no-endpoints"),
    ir.AddElements("pkh1-all", "no-endpoints", (ir.Element(("10.96.0.6", "sctp", 7)),)),
    ir.AddChain("pkh1-all", ir.Chain("gone")),
    ir.AddRule("pkh1-all", "gone", ir.Rule((ir.Verdict(K.ACCEPT),))),
    ir.FlushChain("pkh1-all", "gone"),
    ir.DeleteChain("pkh1-all", "gone"),
    ir.AddSet("pkh1-all", ir.SetDef("tmp", (F.L4PROTO, F.TH_DPORT))),
    ir.AddElements("pkh1-all", "tmp", (ir.Element(("tcp", 1)), ir.Element((17, 2)))),
    ir.AddSet("pkh1-all", ir.SetDef("gone-set", (F.TH_DPORT,))),
    ir.DeleteSet("pkh1-all", "gone-set"),
]


def test_partial_batch_matches_nft(
    make_ns: Callable[[], str], netlink: Callable[[], tuple[str, NftNetlink]]
) -> None:
    t = every_construct()
    a = make_ns()
    ns, nl = netlink()
    nft_load(a, table_text(t))
    nl.apply(table_ops(t))
    nft_load(a, ops_text(PARTIAL))
    nl.apply(PARTIAL)
    got = listing(ns, t.name)
    assert got == listing(a, t.name)
    assert "10.96.0.5 . tcp . 8443 : goto svc-c" in got and "gone" not in got
    # element ops on sets this socket never added: key types come from the kernel
    (ns2, other), b = netlink(), make_ns()
    for where in (ns2, b):
        nft_load(where, table_text(t))
    later: list[ir.Op] = [
        ir.DeleteElements(t.name, "service-ips", (ir.Element(("10.96.0.1", "tcp", 80)),)),
        ir.AddElements(t.name, "addrs", (ir.Element(("10.0.0.1",)),)),
        ir.FlushSet(t.name, "no-endpoints"),
    ]
    other.apply(later)
    nft_load(b, ops_text(later))
    assert listing(ns2, t.name) == listing(b, t.name)
    assert "10.0.0.1" in listing(ns2, t.name)
    other.apply([ir.FlushSet(t.name, "service-ips")])
    nft_load(b, ops_text([ir.FlushSet(t.name, "service-ips")], maps={(t.name, "service-ips")}))
    assert listing(ns2, t.name) == listing(b, t.name)


BAD: list[tuple[list[ir.Op], ir.Op, str]] = []
BAD_IDS: list[str] = []


def _bad(case: str, ops: list[ir.Op], bad: ir.Op, errno_text: str) -> None:
    BAD.append((ops, bad, errno_text))
    BAD_IDS.append(case)


_flush = ir.FlushChain("pkh1-all", "ep-b")
_bad(
    "missing-chain",
    [_flush, ir.DeleteChain("pkh1-all", "no-such-chain")],
    ir.DeleteChain("pkh1-all", "no-such-chain"),
    "No such file",
)
_jump = ir.AddRule("pkh1-all", "ep-b", ir.Rule((ir.Verdict(K.JUMP, "no-such-chain"),)))
_bad("jump-to-missing", [_flush, _jump], _jump, "No such file")
_masq = ir.AddRule("pkh1-all", "filter-forward", ir.Rule((ir.Masquerade(),)))
_bad("masquerade-in-filter", [_flush, _masq], _masq, "Operation not supported")
_busy = ir.DeleteChain("pkh1-all", "ep-b")  # has rules and is referenced
_bad("chain-in-use", [_busy], _busy, "Device or resource busy")
_missing_elem = ir.DeleteElements("pkh1-all", "addrs", (ir.Element(("10.9.9.9",)),))
_bad(
    "missing-element",
    [ir.AddElements("pkh1-all", "addrs", (ir.Element(("10.0.0.1",)),)), _missing_elem],
    _missing_elem,
    "No such file",
)
_loop = ir.AddRule("pkh1-all", "ep-a", ir.Rule((ir.Verdict(K.JUMP, "svc-a"),)))
_bad("loop", [_flush, _loop], _loop, "Too many links")  # EMLINK: jump loop


@pytest.mark.parametrize("ops,bad,errno_text", BAD, ids=BAD_IDS)
def test_bad_op_is_named_and_nothing_changes(
    netlink: Callable[[], tuple[str, NftNetlink]], ops: list[ir.Op], bad: ir.Op, errno_text: str
) -> None:
    ns, nl = netlink()
    nl.apply(table_ops(every_construct()))
    before = listing(ns)
    with pytest.raises(NftError) as info:
        nl.apply(ops)
    assert info.value.op == bad
    message = str(info.value)
    assert f"op #{ops.index(bad)}" in message and errno_text in message
    assert "pkh1-all" in message and "nothing of the batch was committed" in message
    assert listing(ns) == before
    nl.apply([ir.FlushChain("pkh1-all", "ep-b")])  # the socket still works after an error
    assert listing(ns) != before


def test_an_op_that_cannot_be_encoded_sends_nothing(
    netlink: Callable[[], tuple[str, NftNetlink]],
) -> None:
    ns, nl = netlink()
    nl.apply(table_ops(every_construct()))
    before = listing(ns)
    bad = ir.AddRule("pkh1-all", "ep-b", ir.Rule((ir.Dnat("10.1.0.300"),)))
    with pytest.raises(NftError) as info:
        nl.apply([ir.FlushChain("pkh1-all", "ep-b"), bad])
    assert info.value.op == bad
    assert str(info.value) == (
        "nf_tables batch not sent: op #1 (AddRule on table 'pkh1-all'): invalid dnat address "
        "'10.1.0.300': Octet 300 (> 255) not permitted in '10.1.0.300'; nothing was changed"
    )
    assert listing(ns) == before


def test_tables_lists_ours_only(netlink: Callable[[], tuple[str, NftNetlink]]) -> None:
    _ns, nl = netlink()
    nl.apply(table_ops(every_construct("pkh1-x")))
    nl.apply([ir.AddTable("pkh1-y"), ir.AddTable("other")])
    nl.apply([ir.AddSet("pkh1-y", ir.SetDef("s", (F.IP_SADDR,)))])
    got = nl.tables("pkh1-")
    assert set(got) == {"pkh1-x", "pkh1-y"}
    chains, sets = got["pkh1-x"]
    assert set(chains) == {c.name for c, _r in every_construct().chains}
    assert set(sets) == {s.name for s, _e in every_construct().sets}
    assert got["pkh1-y"] == ((), ("s",))
    assert set(nl.tables()) == {"pkh1-x", "pkh1-y", "other"}
    with pytest.raises(NftError, match="no set 'nope' in table ip pkh1-y"):
        nl.apply([ir.AddElements("pkh1-y", "nope", (ir.Element(("10.0.0.1",)),))])


def test_a_batch_with_more_errors_than_fit_is_refused_naming_the_first(
    netlink: Callable[[], tuple[str, NftNetlink]],
) -> None:
    """20k refused messages overrun the receive buffer; the first errors are still there."""
    ns, nl = netlink()
    nl.apply([ir.AddTable("pkh1-t"), ir.AddChain("pkh1-t", ir.Chain("c"))])
    before = listing(ns)
    rule = ir.Rule((ir.Verdict(K.ACCEPT),))
    ops: list[ir.Op] = [ir.AddRule("pkh1-t", "c", rule)]
    ops += [ir.AddRule("pkh1-t", f"missing-{i}", rule) for i in range(20_000)]
    with pytest.raises(NftError) as info:
        nl.apply(ops)
    assert info.value.op == ops[1]
    assert "op #1 `add rule ip pkh1-t missing-0 accept`: No such file" in str(info.value)
    assert listing(ns) == before
    nl.apply(ops[:1])  # the socket is usable after an overrun
    assert "accept" in listing(ns)


def _shard(index: int, services: int) -> ir.Table:
    """A proxy-like shard: vmap dispatch, per-Service chain (masquerade mark, 2 endpoints)."""
    name = f"pkh1-shard-{index:02d}"
    base = ir.BaseChain(ir.ChainType.NAT, ir.Hook.PREROUTING, -100)
    chains: list[tuple[ir.Chain, tuple[ir.Rule, ...]]] = [
        (ir.Chain("nat-prerouting", base), (ir.Rule((ir.VMap(SVC_KEY, "service-ips"),)),)),
        (ir.Chain("mark-for-masquerade"), (ir.Rule((ir.MarkOr(0x4000),)),)),
    ]
    elements = []
    for n in range(services):
        svc, ip = f"svc-{n}", f"10.{96 + index}.{n // 250}.{n % 250 + 1}"
        rules = (
            ir.Rule(
                (
                    ir.Cmp(F.IP_SADDR, "10.88.0.0/16", negate=True),
                    ir.Verdict(K.JUMP, "mark-for-masquerade"),
                )
            ),
            ir.Rule((ir.Random(2, 0), ir.Verdict(K.GOTO, f"ep-{n}-a"))),
            ir.Rule((ir.Verdict(K.GOTO, f"ep-{n}-b"),)),
        )
        chains.append((ir.Chain(svc), rules))
        for end, addr in (("a", "10.1.0.5"), ("b", "10.1.0.6")):
            dnat = ir.Rule((ir.Cmp(F.L4PROTO, "tcp"), ir.Dnat(addr, 8080)))
            chains.append((ir.Chain(f"ep-{n}-{end}"), (dnat,)))
        elements.append(ir.Element((ip, "tcp", 80), ir.Verdict(K.GOTO, svc)))
    svc_map = ir.SetDef("service-ips", SVC_KEY, verdict_map=True)
    return ir.Table(name, tuple(chains), ((svc_map, tuple(elements)),))


def test_one_chain_change_in_a_10k_rule_ruleset(
    netlink: Callable[[], tuple[str, NftNetlink]], capsys: pytest.CaptureFixture[str]
) -> None:
    """16 shard tables, 10k rules in all: a one-Service change validates one shard only."""
    ns, nl = netlink()
    tables = [_shard(i, 125) for i in range(16)]  # 125 * 5 rules + 2 = 627 rules per shard
    ops: list[ir.Op] = []
    base: list[ir.Op] = []  # base chain rules last, as the proxy's full batch does
    for t in tables:
        for op in table_ops(t):
            is_base = isinstance(op, ir.AddRule) and op.chain == "nat-prerouting"
            (base if is_base else ops).append(op)
    load_start = time.perf_counter()
    nl.apply(ops + base)  # one batch of ~16k messages
    load = time.perf_counter() - load_start
    rules = sum(len(r) for t in tables for _c, r in t.chains)
    assert rules >= 10_000
    change: list[ir.Op] = [
        ir.FlushChain("pkh1-shard-07", "svc-3"),
        ir.AddRule("pkh1-shard-07", "svc-3", ir.Rule((ir.Verdict(K.GOTO, "ep-3-b"),))),
    ]
    times = []
    for _ in range(5):
        start = time.perf_counter()
        nl.apply(change)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    got = nl.tables("pkh1-shard-")
    dump = time.perf_counter() - start
    assert len(got) == 16 and sum(len(c) for c, _s in got.values()) == 16 * (2 + 3 * 125)
    assert "goto ep-3-b" in _ns_run(ns, "nft", "list", "chain", "ip", "pkh1-shard-07", "svc-3")
    with capsys.disabled():
        print(
            f"\n[nft netlink] {rules} rules in 16 tables: one-batch load {load:.2f}s; "
            f"one-chain change apply() min {min(times) * 1000:.1f} ms, "
            f"median {sorted(times)[2] * 1000:.1f} ms; "
            f"tables() dump {dump * 1000:.1f} ms"
        )
