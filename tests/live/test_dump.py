"""Dumping real processes: the leaky C workload started here and ended by PID."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pytest

from offheap import proc
from offheap.dump import ProcessExitedDuringDump, dump_process
from offheap.errors import DumpError, NoSuchProcess, ZombieProcess
from offheap.manifest import COMPLETE, SKIPPED, load_manifest, read_region, region_file

pytestmark = pytest.mark.single_impl

SRC = str(Path(__file__).resolve().parents[2] / "src")
PAYLOAD = b'{"type":"push",'
needs_gdb = pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")


def _cli(*args: str, user: list[str] | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run([*(user or []), sys.executable, "-m", "offheap", *args], capture_output=True,
                          text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)


def _bytes_at(manifest, addr: int, size: int) -> bytes:
    for r in manifest.dumped():
        if r.start <= addr < r.end:
            with open(region_file(manifest, r), "rb") as f:
                f.seek(addr - r.start)
                return f.read(size)
    raise AssertionError(f"{addr:#x} is in no dumped region")


def _present_pages(pid: int, start: int, end: int, page: int) -> int:
    with open(f"/proc/{pid}/pagemap", "rb", buffering=0) as f:
        f.seek(start // page * 8)
        data = f.read((end - start) // page * 8)
    return sum(1 for (v,) in struct.iter_unpack("<Q", data) if v >> 63)


def _mapping_rss(pid: int, addr: int) -> int:
    return next(m.rss for m in proc.read_smaps(pid) if m.start <= addr < m.end)


# --------------------------------------------------------------------------- content


def test_dump_holds_every_payload_at_its_address(start_leaky, tmp_path):
    with start_leaky("-t", "2", "-k", "2048") as target:
        m = dump_process(target.pid, tmp_path / "d", ranges="all-anon")
        total = sum(read_region(m, r).count(PAYLOAD) for r in m.dumped())
        # Each payload once, plus stale copies asprintf may leave in freed chunks.
        assert total >= sum(target.stats["payloads"])
        for thread, addr in enumerate(target.stats["first"]):
            want = b'{"type":"push","thread":%d,"seq":0,' % thread
            assert _bytes_at(m, addr, len(want)) == want


def test_suspects_are_the_arena_heaps(start_leaky, tmp_path):
    pytest.importorskip("offheap.regions")
    with start_leaky("-t", "2", "-k", "2048") as target:
        m = dump_process(target.pid, tmp_path / "d")          # suspects is the default
        assert m.selection == "suspects"
        classes = {r.cls for r in m.dumped()}
        assert "arena" in classes
        for addr in target.stats["first"]:
            assert any(r.start <= addr < r.end and r.cls == "arena" for r in m.dumped())
        # Arena reservations' ---p remainders are listed, not read.
        assert any(r.status == SKIPPED and r.perms.startswith("---") for r in m.regions)


@needs_gdb
def test_mem_vm_gdb_dumps_of_a_stopped_target_are_identical(start_leaky, sigstop, tmp_path):
    with start_leaky("-t", "2", "-k", "1024", "-s", "1024", "-e", "8") as target:
        with sigstop(target.pid):
            ms = {}
            for method in ("mem", "vm", "gdb"):
                ms[method] = dump_process(target.pid, tmp_path / method, ranges="all-anon", method=method)
                assert ms[method].complete, ms[method].note
            # gdb must leave the target as it found it (attached to a stopped process, it resumes
            # it internally); a mem dump after gdb must still match.
            ms["mem-again"] = dump_process(target.pid, tmp_path / "again", ranges="all-anon")
    ref = ms["mem"]
    assert ref.present > 2 * 1024 * 1024
    for method, m in ms.items():
        assert [(r.start, r.end, r.present, r.status) for r in m.regions] == \
               [(r.start, r.end, r.present, r.status) for r in ref.regions], method
        for a, b in zip(ref.dumped(), m.dumped()):
            assert a.sha256 == b.sha256, (method, hex(a.start))
            assert read_region(ref, a) == read_region(m, b), (method, hex(a.start))
    assert ms["mem"].stopped_seconds == ms["vm"].stopped_seconds == 0.0
    assert ms["gdb"].stopped_seconds > 0.0


# --------------------------------------------------------------------------- manifest and files


def test_manifest_fields_modes_and_hashes(start_leaky, leaky_binary, tmp_path):
    old = os.umask(0)        # modes must not depend on the caller's umask
    try:
        with start_leaky("-t", "1", "-k", "1024") as target:
            maps = {(mp.start, mp.end): mp for mp in proc.read_maps(target.pid)}
            before = datetime.now().astimezone()
            m = dump_process(target.pid, tmp_path / "d", ranges="all-anon")
    finally:
        os.umask(old)
    d = tmp_path / "d"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "manifest.json").stat().st_mode) == 0o600
    loaded = load_manifest(d)
    assert loaded == m
    raw = json.loads((d / "manifest.json").read_text())
    assert raw["schema"] == "offheap-dump/1"
    assert raw["pid"] == target.pid and raw["method"] == "mem"
    assert raw["cmdline"] == [str(leaky_binary), "-t", "1", "-k", "1024"]
    created = datetime.fromisoformat(raw["created"])
    assert abs((created - before).total_seconds()) < 60
    assert {"start", "end", "perms", "path", "class", "rss", "present", "file", "sha256"} <= set(raw["regions"][0])
    assert sorted(p.name for p in d.iterdir()) == sorted(["manifest.json", *(r.file for r in m.dumped())])
    for r in m.regions:
        mp = maps[(r.start, r.end)]                      # every entry is a real mapping here
        assert (r.perms, r.path) == (mp.perms, mp.path)
        if r.file is None:
            assert r.status == SKIPPED and r.skipped
            continue
        f = d / r.file
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
        assert f.stat().st_size == r.end - r.start
        assert hashlib.sha256(f.read_bytes()).hexdigest() == r.sha256
        assert r.present % m.page_size == 0 and r.present <= r.end - r.start
        assert r.rss is not None


def test_existing_dump_is_not_overwritten_without_force(start_leaky, tmp_path):
    d = tmp_path / "d"
    with start_leaky("-t", "1", "-k", "512") as target:
        m1 = dump_process(target.pid, d, ranges="all-anon")
        first = {p.name: p.read_bytes() for p in d.iterdir()}
        with pytest.raises(DumpError, match="already holds a dump.*force"):
            dump_process(target.pid, d, ranges="all-anon")
        assert {p.name: p.read_bytes() for p in d.iterdir()} == first
        r = _cli("dump", str(target.pid), "--all-anon", "-o", str(d))
        assert r.returncode != 0 and "--force" in r.stderr and "Traceback" not in r.stderr
        m2 = dump_process(target.pid, d, ranges="all-anon", method="vm", force=True)
        assert m2.method == "vm" and load_manifest(d).method == "vm"
        assert [x.sha256 for x in m2.dumped()] == [x.sha256 for x in m1.dumped()]
        # A dump cut short before its manifest is still recognised as ours.
        (d / "manifest.json").unlink()
        with pytest.raises(DumpError, match="already holds a dump"):
            dump_process(target.pid, d, ranges="all-anon")
        dump_process(target.pid, d, ranges="all-anon", force=True)
        # A directory holding something else is never taken, even with force.
        other = tmp_path / "other"
        other.mkdir()
        (other / "keep.txt").write_text("mine")
        with pytest.raises(DumpError, match="not empty"):
            dump_process(target.pid, other, ranges="all-anon", force=True)
        assert (other / "keep.txt").read_text() == "mine"


def test_cli_summary(start_leaky, tmp_path):
    with start_leaky("-t", "1", "-k", "512", "-s", "1024") as target:
        s = target.stats
        rng = f"{s['sparse_addr']:x}-{s['sparse_addr'] + s['sparse_len']:x}"
        r = _cli("dump", str(target.pid), "--range", rng, "-o", str(tmp_path / "d"), "--method", "vm")
    assert r.returncode == 0, r.stderr
    assert "dumped 1 region(s)" in r.stdout and "target stopped 0.000 s" in r.stdout
    present = s["sparse_touched_pages"] * s["page_size"]
    assert load_manifest(tmp_path / "d").present == present


# --------------------------------------------------------------------------- pagemap


@pytest.mark.parametrize("method", ["mem", "vm", pytest.param("gdb", marks=needs_gdb)])
def test_untouched_pages_stay_untouched_and_sparse(start_leaky, tmp_path, method, monkeypatch):
    import offheap.dump as dump_mod

    # 128 runs of one page: gdb gets them over three attaches.
    monkeypatch.setattr(dump_mod, "GDB_BATCH", 50)
    with start_leaky("-t", "0", "-s", "8192", "-e", "16") as target:
        s = target.stats
        page, start = s["page_size"], s["sparse_addr"]
        end = start + s["sparse_len"]
        touched = s["sparse_touched_pages"]
        assert _present_pages(target.pid, start, end, page) == touched
        rss_before = _mapping_rss(target.pid, start)
        m = dump_process(target.pid, tmp_path / "d", ranges=[(start, end)], method=method)
        # Reading an untouched page through /proc/PID/mem would map the zero page: it must not happen.
        assert _present_pages(target.pid, start, end, page) == touched
        assert _mapping_rss(target.pid, start) == rss_before
    (r,) = m.regions
    assert (r.start, r.end, r.status) == (start, end, COMPLETE)
    assert r.present == touched * page
    f = region_file(m, r)
    st = f.stat()
    assert st.st_size == end - start
    assert st.st_blocks * 512 <= r.present + 64 * 1024    # holes stay holes (slack: fs metadata)
    data = f.read_bytes()
    for i in range(0, s["sparse_len"] // page, s["touch_every"]):
        marker = b"SPARSE-PAGE-%d\0" % i
        assert data[i * page:i * page + len(marker)] == marker


def test_max_bytes_stops_the_dump(start_leaky, tmp_path):
    with start_leaky("-t", "2", "-k", "1024") as target:
        m = dump_process(target.pid, tmp_path / "d", ranges="all-anon", max_bytes=300_000)
    assert m.present <= 300_000 and m.present > 200_000
    assert not m.complete and "max_bytes" in m.note
    assert any(s.reason == "max-bytes" for r in m.regions for s in r.skipped)


# --------------------------------------------------------------------------- errors


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_dead_pid(tmp_path):
    pid = _dead_pid()
    with pytest.raises(NoSuchProcess):
        dump_process(pid, tmp_path / "d", ranges="all-anon")
    r = _cli("dump", str(pid), "--all-anon", "-o", str(tmp_path / "d"))
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [f"offheap dump: no process with PID {pid}"]
    assert not (tmp_path / "d").exists()


def test_zombie(tmp_path):
    p = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(f"/proc/{p.pid}/stat", "rb") as f:
                if f.read().rpartition(b")")[2].split()[0] == b"Z":
                    break
            time.sleep(0.01)
        with pytest.raises(ZombieProcess):
            dump_process(p.pid, tmp_path / "d", ranges="all-anon")
    finally:
        p.wait()
    assert not (tmp_path / "d").exists()


def test_process_exiting_mid_dump_leaves_a_partial_manifest(start_leaky, tmp_path):
    with start_leaky("-t", "2", "-k", "512") as target:
        def kill_after_first(i, n, entry):
            if i == 0:
                os.kill(target.pid, signal.SIGKILL)
                target.proc.wait()

        with pytest.raises(ProcessExitedDuringDump) as info:
            dump_process(target.pid, tmp_path / "d", ranges="all-anon", progress=kill_after_first)
    m = load_manifest(tmp_path / "d")
    assert m == info.value.manifest
    assert not m.complete and "exited" in m.note
    assert m.regions[0].status == COMPLETE and m.regions[0].file
    later = m.regions[1:]
    assert later and all(r.status != COMPLETE for r in later)
    assert any(s.reason == "process-exited" for r in later for s in r.skipped)


def _run_as_nobody(code: str) -> subprocess.CompletedProcess:
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to run a dump as another user")
    return subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=SRC), stdin=subprocess.DEVNULL)


def test_unreadable_target_is_access_denied(start_leaky):
    # A world-writable scratch directory: the non-root dumper must fail on the target, not on mkdir.
    scratch = tempfile.mkdtemp(prefix="offheap-denied-")
    os.chmod(scratch, 0o777)
    try:
        with start_leaky("-t", "1", "-k", "256") as target:
            out = os.path.join(scratch, "d")
            code = (
                "import sys\n"
                "from offheap.dump import dump_process\n"
                "from offheap.errors import AccessDenied\n"
                "from offheap.dump import MemReader, VmReader\n"
                "for method in ('mem', 'vm'):\n"
                "    try:\n"
                f"        dump_process({target.pid}, {out!r}, ranges='all-anon', method=method)\n"
                "    except AccessDenied as exc:\n"
                "        print(method, 'AccessDenied', exc)\n"
                # Each reader on its own, past the /proc checks dump_process makes first.
                "for name, make in (('MemReader', lambda: MemReader(%d)), ('VmReader', lambda: VmReader(%d, %d))):\n"
                "    try:\n"
                "        make()\n"
                "    except AccessDenied as exc:\n"
                "        print(name, 'AccessDenied', exc)\n"
            ) % (target.pid, target.pid, target.stats["first"][0])
            r = _run_as_nobody(code)
            assert r.returncode == 0, r.stderr
            lines = r.stdout.splitlines()
            assert [ln.split()[:2] for ln in lines] == [["mem", "AccessDenied"], ["vm", "AccessDenied"],
                                                        ["MemReader", "AccessDenied"],
                                                        ["VmReader", "AccessDenied"]]
            assert all("CAP_SYS_PTRACE" in ln and "ptrace_scope" in ln for ln in lines)
            r = subprocess.run(
                [shutil.which("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups",
                 sys.executable, "-m", "offheap", "dump", str(target.pid), "--all-anon", "-o", out],
                capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=SRC))
            assert r.returncode != 0
            (line,) = r.stderr.strip().splitlines()
            assert line.startswith("offheap dump: ") and "CAP_SYS_PTRACE" in line
            assert not os.path.exists(out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@needs_gdb
def test_gdb_with_a_second_tracer_fails_cleanly(start_leaky, tmp_path):
    with start_leaky("-t", "1", "-k", "256") as target:
        # The first tracer: a gdb that attaches and then sits in a shell command.
        holder = subprocess.Popen(
            ["gdb", "-nx", "-batch", "-iex", "set debuginfod enabled off", "-iex", "set auto-solib-add off",
             "-p", str(target.pid), "-ex", "shell sleep 30"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while proc.read_status(target.pid).tracer_pid == 0:
                assert time.monotonic() < deadline, "the holding gdb never attached"
                time.sleep(0.02)
            with pytest.raises(DumpError, match=f"already traced by PID {holder.pid}.*gdb cannot attach"):
                dump_process(target.pid, tmp_path / "d", ranges="all-anon", method="gdb")
            assert not (tmp_path / "d").exists()      # nothing pretends to be a dump
            # The race the pre-check cannot close (a tracer arriving after it): gdb's own failure
            # must still be told apart from a permission problem.
            from offheap.dump import _gdb_error
            res = subprocess.run(["gdb", "-nx", "-batch", "-iex", "set debuginfod enabled off",
                                  "-p", str(target.pid), "-ex", "dump memory x 0 1"],
                                 capture_output=True, timeout=60, cwd=tmp_path)
            assert res.returncode != 0 and not (tmp_path / "x").exists()
            assert isinstance(_gdb_error(target.pid, res), DumpError)
        finally:
            holder.kill()
            holder.wait()


# --------------------------------------------------------------------------- pagemap runs


def test_pagemap_runs_split_present_swapped_absent(tmp_path, monkeypatch):
    """Swapped pages cannot be made here (no swap): pagemap entries written as the kernel lays them out."""
    import offheap.dump as dump_mod

    page = 4096
    base_page = 1000
    states = ["present"] * 3 + ["absent"] * 2 + ["swapped"] * 4 + ["present"] + ["absent"] * 5 + ["present"] * 2
    entries = bytearray(8 * base_page)
    for st in states:
        v = {"present": (1 << 63) | 0x1234, "swapped": (1 << 62) | (7 << 5), "absent": 0}[st]
        entries += struct.pack("<Q", v)
    f = tmp_path / "pagemap"
    f.write_bytes(bytes(entries))
    monkeypatch.setattr(dump_mod, "PAGEMAP_BATCH", 4)      # runs must merge across batch edges
    pm = dump_mod.Pagemap(0, page, path=str(f))
    try:
        start = base_page * page
        runs = list(pm.runs(start, start + len(states) * page))
        # A range starting mid-page keeps its exact start.
        mid = list(pm.runs(start + 100, start + 2 * page))
    finally:
        pm.close()
    got = [((r.start - start) // page, (r.end - start) // page, r.state) for r in runs]
    assert got == [(0, 3, "present"), (3, 5, "absent"), (5, 9, "swapped"), (9, 10, "present"),
                   (10, 15, "absent"), (15, 17, "present")]
    assert [(r.start, r.end, r.state) for r in mid] == [(start + 100, start + 2 * page, "present")]


@pytest.mark.parametrize("method", ["mem", "vm"])
def test_unreadable_pages_are_recorded_not_fatal(start_leaky, tmp_path, method):
    """A read running off the end of a mapping (what a mapping unmapped mid-dump looks like)."""
    import offheap.dump as dump_mod

    with start_leaky("-t", "0", "-s", "64", "-e", "1") as target:
        page = target.stats["page_size"]
        maps = sorted(proc.read_maps(target.pid), key=lambda m: m.start)
        m = next(a for a, b in zip(maps, maps[1:])
                 if a.readable and a.perms[1] == "w" and b.start >= a.end + 2 * page)
        reader = dump_mod.VmReader(target.pid) if method == "vm" else dump_mod.MemReader(target.pid)
        start, end = m.end - 2 * page, m.end + 2 * page
        st = dump_mod._RegionState(dump_mod._Planned(start, end, None, None))
        fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            out = dump_mod._Output(fd, start, True, [memoryview(bytearray(1 << 20)) for _ in range(2)])
            try:
                dump_mod._read_run(reader, out, st, start, end, page, target.pid, None)
                out.finish(end - start)
            finally:
                out.close()
        finally:
            os.close(fd)
            reader.close()
    assert st.present == 2 * page
    assert [(s.start, s.end, s.reason) for s in st.skipped] == [(m.end, end, "unreadable")]
    assert not st.exited


def test_range_over_a_gap_records_the_unmapped_part(start_leaky, tmp_path):
    with start_leaky("-t", "0", "-s", "64", "-e", "1") as target:
        page = target.stats["page_size"]
        maps = sorted(proc.read_maps(target.pid), key=lambda m: m.start)
        a, b = next((a, b) for a, b in zip(maps, maps[1:])
                    if a.perms.startswith("rw") and b.start >= a.end + 2 * page)
        m = dump_process(target.pid, tmp_path / "d", ranges=[(a.end - page, a.end + page)])
    first, gap = m.regions
    assert (first.start, first.end, first.file is not None) == (a.end - page, a.end, True)
    assert (gap.start, gap.end, gap.status, gap.file) == (a.end, a.end + page, SKIPPED, None)
    assert gap.skipped[0].reason == "unmapped"


def test_no_checksum(start_leaky, tmp_path):
    with start_leaky("-t", "1", "-k", "256") as target:
        r = _cli("dump", str(target.pid), "--all-anon", "--no-checksum", "-o", str(tmp_path / "d"))
        assert r.returncode == 0, r.stderr
        with_sum = dump_process(target.pid, tmp_path / "e", ranges="all-anon")
    m = load_manifest(tmp_path / "d")
    assert all(x.sha256 is None for x in m.regions)
    # Same bytes either way; only the hash is left out.
    assert [read_region(m, x) for x in m.dumped()] == [read_region(with_sum, x) for x in with_sum.dumped()]
