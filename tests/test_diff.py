"""``offheap diff``: growth between two investigations, on made-up reports and on a real
workload that leaks more of one payload type between two investigations."""

from __future__ import annotations

import copy
import json

import pytest

from offheap.demo import demo_signatures, start_workload
from offheap.diff import diff, render_diff
from offheap.errors import InputError
from offheap.investigate import SCHEMA, SCHEMA_VERSION, investigate
from tests.clirun import run_cli

pytestmark = pytest.mark.single_impl


def _report(t: str, rss: int, classes: dict[str, int], types: dict[str, int], regions: list[tuple]) -> dict:
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "target": {"pid": 42, "name": "app", "captured_at": t, "start_time_ticks": 7, "rss": rss},
        "totals": {"budget": 1 << 30, "dumped_bytes": sum(types.values()),
                   "classes": [{"class": c, "rss": v} for c, v in classes.items()]},
        "types": [{"name": n, "bytes": b, "live_bytes": b} for n, b in types.items()],
        "regions": [{"start": hex(s), "end": hex(e), "perms": p, "class": c, "rss": r, "path": ""}
                    for s, e, p, c, r in regions],
    }


A = _report("2024-05-01T09:00:00.000+00:00", 500 << 20, {"arena": 300 << 20, "file": 50 << 20},
            {"unread": 100 << 20, "presence": 40 << 20},
            [(0x7f0000000000, 0x7f0002000000, "rw-p", "arena", 30 << 20),
             (0x7f0002000000, 0x7f0004000000, "---p", "arena", 0),
             (0x7f1000000000, 0x7f1000100000, "rw-p", "anon", 1 << 20)])
B = _report("2024-05-01T11:00:00.000+00:00", 700 << 20, {"arena": 480 << 20, "file": 50 << 20},
            {"unread": 250 << 20, "presence": 42 << 20, "message_new": 1 << 20},
            [(0x7f0000000000, 0x7f0003000000, "rw-p", "arena", 48 << 20),
             (0x7f0003000000, 0x7f0004000000, "---p", "arena", 0),
             (0x7f0004000000, 0x7f0006000000, "rw-p", "arena", 20 << 20)])


def test_growth_per_class_and_type_per_hour():
    d = diff(A, B)
    assert d.hours == 2.0 and d.same_process
    assert d.rss.delta == 200 << 20 and d.rss.per_hour == 100 << 20
    assert d.cls("arena").delta == 180 << 20 and d.cls("arena").per_hour == 90 << 20
    assert d.cls("file").delta == 0
    assert d.types[0].name == "unread" and d.type("unread").per_hour == 75 << 20
    assert d.type("message_new").a == 0 and d.type("message_new").b == 1 << 20
    assert [hex(c.start) for c in d.new] == ["0x7f0004000000"]
    assert [hex(c.start) for c in d.vanished] == ["0x7f1000000000"]
    # The arena heap grew in place (same start, higher end): changed, not new + vanished.
    assert d.changed[0].start == 0x7f0000000000 and d.changed[0].delta == 18 << 20
    text = render_diff(d)
    assert "grew most: payload `unread`" in text and "/h" in text and "new regions: 1" in text


def test_different_process_and_reversed_order_are_noted():
    b = copy.deepcopy(B)
    b["target"]["pid"] = 43
    d = diff(b, A)
    assert not d.same_process
    assert any("not the same process" in n for n in d.notes)
    assert any("captured before" in n for n in d.notes)
    assert d.rss.per_hour == 100 << 20       # -200 MiB over -2 h


def test_not_a_report(tmp_path):
    with pytest.raises(InputError, match="no investigation report"):
        diff(tmp_path, tmp_path)
    (tmp_path / "report.json").write_text(json.dumps({"schema": "something-else"}))
    with pytest.raises(InputError, match="not an offheap investigation report"):
        diff(tmp_path, tmp_path)
    res = run_cli("diff", str(tmp_path), str(tmp_path / "missing"))
    err = res.stderr.decode()
    assert res.returncode == 1 and err.startswith("offheap diff: ") and err.count("\n") == 1


def test_growing_workload_grows_in_the_right_type(tmp_path):
    sigs = demo_signatures()
    with start_workload(8, threads=2) as w:
        investigate(w.pid, tmp_path / "a", signatures=sigs)
        before = dict(w.stats["bytes"])
        after = w.leak(12, "presence")["bytes"]
        investigate(w.pid, tmp_path / "b", signatures=sigs)
    assert after["presence"] - before["presence"] >= 12 << 20
    assert after["unread_count"] == before["unread_count"]
    d = diff(tmp_path / "a", tmp_path / "b")
    assert d.same_process and d.hours is not None and d.hours > 0
    grown = d.type("presence")
    leaked = after["presence"] - before["presence"]
    assert abs(grown.delta - leaked) <= 0.1 * leaked, (grown, leaked)
    assert grown.per_hour > 0
    assert abs(d.type("unread_count").delta) <= 0.02 * d.type("unread_count").a
    assert d.types[0].name == "presence"
    assert d.cls("arena").delta >= 0.9 * leaked
    res = run_cli("diff", str(tmp_path / "a"), str(tmp_path / "b"))
    assert res.returncode == 0, res.stderr.decode()
    assert "grew most: payload `presence`" in res.stdout.decode()
