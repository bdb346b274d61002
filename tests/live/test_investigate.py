"""``investigate`` on a real leaking process: the bundled demo workload (CPython threads
leaking JSON pushes into glibc arenas through libc strdup), started and ended by PID."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from offheap import _impl
from offheap.demo import TOLERANCE, demo_signatures, found_bytes, start_workload
from offheap.demo.workload import TYPES
from offheap.errors import InputError, NoSuchProcess
from offheap.investigate import (CAPTURE, DUMP, REPORT_JSON, SCHEMA, SCHEMA_VERSION, investigate,
                                 investigate_offline, load_report, select_regions)
from tests.clirun import run_cli

pytestmark = pytest.mark.single_impl

SIZE_MB = 24


@pytest.fixture(scope="module")
def workload():
    with start_workload(SIZE_MB, threads=2) as w:
        yield w


@pytest.fixture(scope="module")
def investigated(workload, tmp_path_factory):
    out = tmp_path_factory.mktemp("inv") / "run"
    inv = investigate(workload.pid, out, signatures=demo_signatures())
    return inv, out, dict(workload.stats)


def _shares(values: dict[str, int]) -> dict[str, float]:
    total = sum(values[t] for t in TYPES)
    return {t: values[t] / total for t in TYPES}


def test_finds_the_leaked_types_in_the_workloads_proportions(investigated):
    inv, _, stats = investigated
    found = found_bytes(inv)
    want, got = _shares(stats["bytes"]), _shares(found)
    for t in TYPES:
        assert abs(got[t] - want[t]) <= TOLERANCE * want[t], (t, got, want)
        # Every leaked payload is a whole string in the arenas: the bytes agree too.
        assert abs(found[t] - stats["bytes"][t]) <= TOLERANCE * stats["bytes"][t], (t, found, stats)
    assert [t.name for t in inv.types[:3]] == list(TYPES)     # most bytes first: 50/30/20


def test_arena_heaps_are_found_dumped_and_judged_live(investigated):
    inv, _, stats = investigated
    arenas = [d for d in inv.dumps if str(d.region.cls) == "arena"]
    assert inv.arena_count >= 2 and len(arenas) >= 2
    # The payloads live in the arenas: their RSS covers what the workload leaked.
    assert sum(d.region.rss for d in arenas) >= stats["total"]
    for d in arenas:
        assert d.heap is not None and d.heap.verdict.startswith("live"), d.verdict
    assert inv.verdicts[-1].startswith("overall: live allocations")
    unread = inv.type("unread_count")
    # In-use chunks hold the strings: at least the string bytes, plus malloc headers; the
    # workload frees nothing (a few freed Python strings in [heap] may hold a copy).
    assert unread.live_bytes >= unread.bytes and unread.free_bytes <= 0.01 * unread.live_bytes
    text = inv.summary()
    assert "unread_count" in text and "glibc arenas hold" in text and "dumped" in text


def test_report_json_is_versioned_and_private(investigated):
    inv, out, _ = investigated
    rep = load_report(out)
    assert rep["schema"] == SCHEMA and rep["schema_version"] == SCHEMA_VERSION
    assert rep["target"]["pid"] == inv.target.pid and rep["target"]["is_jvm"] is False
    assert rep["nmt"] is None
    assert rep["totals"]["dumped_bytes"] == inv.dumped_bytes <= rep["totals"]["budget"]
    assert rep["totals"]["stopped_seconds"] == 0.0        # /proc/PID/mem never stops the target
    assert sum(rep["composition"].values()) == inv.dumped_bytes
    names = {t["name"]: t for t in rep["types"]}
    assert names["unread_count"]["templates"][0]["template"].startswith('{"event":"unread_count"')
    assert names["unread_count"]["example_addresses"][0].startswith("0x")
    assert any(r["dumped"] and r["class"] == "arena" for r in rep["regions"])
    for path in (out, out / CAPTURE, out / DUMP):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700, path
    for path in [out / REPORT_JSON, *(out / CAPTURE).iterdir(), *(out / DUMP).iterdir()]:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    # Only malloc knobs are kept from the environment (a production environ holds secrets).
    assert b"PATH=" not in (out / CAPTURE / "environ").read_bytes()


def test_offline_reanalysis_gives_the_same_numbers(investigated, tmp_path):
    inv, out, _ = investigated
    again = investigate_offline(out, out_dir=tmp_path / "again")
    a, b = inv.to_dict(), again.to_dict()
    for key in ("target", "totals", "regions", "dumps", "composition", "types", "verdicts", "summary",
                "signatures"):
        assert a[key] == b[key], key
    assert b["offline"] is True
    assert json.loads((tmp_path / "again" / REPORT_JSON).read_text())["types"] == a["types"]


def test_discovered_templates_without_signatures(workload, tmp_path):
    inv = investigate(workload.pid, tmp_path / "disc", budget=256 << 20)
    assert inv.signatures_source == "discovered"
    want, got = _shares(workload.stats["bytes"]), _shares(found_bytes(inv))
    for t in TYPES:
        assert abs(got[t] - want[t]) <= TOLERANCE * want[t], (t, got, want)
    # The discovered types were saved: an offline run uses the very same ones.
    assert investigate_offline(tmp_path / "disc").types[0].name == inv.types[0].name


def test_budget_limits_what_is_dumped(investigated, workload, tmp_path):
    first, _, _ = investigated
    biggest = max((r for r in first.regions if str(r.cls) == "arena"), key=lambda r: r.rss)
    budget = biggest.rss + (1 << 20)
    inv = investigate(workload.pid, tmp_path / "small", signatures=demo_signatures(), budget=budget)
    assert 0 < inv.dumped_bytes <= budget
    # The largest unexplained RSS goes first; the rest of the budget takes what still fits.
    assert any(d.region.start == biggest.start for d in inv.dumps)
    assert len(inv.dumps) < len(first.dumps)
    # The pure-Python kernels, re-analysing the same dumps, agree to the byte.
    previous = _impl.implementation()
    _impl.select("python")
    try:
        twin = investigate_offline(tmp_path / "small", out_dir=tmp_path / "twin", write_html=False)
    finally:
        _impl.select(previous)
    a, b = inv.to_dict(), twin.to_dict()
    for key in ("dumps", "composition", "types", "verdicts"):
        assert a[key] == b[key], key


def test_select_regions_order(investigated):
    inv, _, _ = investigated
    chosen = select_regions(inv.regions, 1 << 40)
    classes = [str(r.cls) for r in chosen]
    heaps = [r for r in chosen if str(r.cls) in ("arena", "heap")]
    assert classes[:len(heaps)] == [str(r.cls) for r in heaps]            # heaps before other anon
    assert [r.rss for r in heaps] == sorted((r.rss for r in heaps), reverse=True)
    assert all(r.rss >= 1 << 20 for r in chosen if str(r.cls) == "anon")
    assert select_regions(inv.regions, 1) == []


def test_used_directory_needs_force(investigated, workload, tmp_path):
    _, out, _ = investigated
    with pytest.raises(InputError, match="--force"):
        investigate(workload.pid, out)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="choose a new directory"):
        investigate(workload.pid, foreign, force=True)
    assert (foreign / "notes.txt").read_text() == "mine"


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_dead_pid_is_an_error(tmp_path):
    with pytest.raises(NoSuchProcess):
        investigate(_dead_pid(), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_cli_errors_are_one_line(investigated, workload, tmp_path):
    _, out, _ = investigated
    cases = [
        ("investigate", str(_dead_pid()), "-o", str(tmp_path / "dead")),
        ("investigate", str(workload.pid), "-o", str(out)),                 # exists, no --force
        ("investigate", "--from", str(tmp_path)),                            # not an investigation
        ("investigate", str(workload.pid)),                                  # no -o
    ]
    for args in cases:
        res = run_cli(*args)
        err = res.stderr.decode()
        assert res.returncode != 0, args
        assert err.startswith("offheap investigate: ") and err.count("\n") == 1, (args, err)
        assert "Traceback" not in err


def test_cli_from_dir_prints_the_diagnosis(investigated, tmp_path):
    _, out, _ = investigated
    res = run_cli("investigate", "--from", str(out), "-o", str(tmp_path / "re"), "--no-html")
    assert res.returncode == 0, res.stderr.decode()
    text = res.stdout.decode()
    assert "unread_count" in text and "live" in text and "report:" in text
