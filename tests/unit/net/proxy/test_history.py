"""The ring of applied rulesets behind /debug/rules."""

from __future__ import annotations

from net.proxy.history import History, SyncRecord


def _record(i: int, text: str = "") -> SyncRecord:
    return SyncRecord(time=float(i), duration=0.01, full=i == 0, services=i, text=text)


def test_keeps_the_newest_records_newest_first() -> None:
    h = History(3)
    for i in range(5):
        h.add(_record(i))
    assert [r["time"] for r in h.to_json()] == [4.0, 3.0, 2.0]
    last = h.last()
    assert last is not None and last.time == 4.0


def test_text_is_kept_only_for_the_newest() -> None:
    h = History(10, keep_text=2)
    for i in range(4):
        h.add(_record(i, text=f"*nat\n# {i}\nCOMMIT\n"))
    assert [bool(r.text) for r in h] == [False, False, True, True]
    newest = h.to_json(with_text=True)[0]
    assert newest["text"].startswith("*nat") and newest["full"] is False
    assert "text" not in h.to_json()[0]
