"""The real JVM, end to end: a leaking push server (jvm/PushServer.java) examined by offheap.

Two JVMs (``-Xmx256m -XX:NativeMemoryTracking=summary``), one per test class, one after the
other, each ended by PID:

* **leak** — worker threads feed JSON pushes of three types into ``java.util.zip.Deflater``
  objects that are never ``end()``ed. zlib's state (window included) is malloc'ed outside
  NMT, so NMT's malloc total stays small while the glibc arenas grow; the pushes sit in the
  zlib windows, and the program reports how many bytes of each type it put there.
* **burst** — workers ``Unsafe.allocateMemory`` 256 MiB of pushes and free 15/16 of it while
  every 16th block stays live: glibc keeps the freed chunks resident. NMT (which tracks
  Unsafe memory) shows its peak far above its current figure; the heap walk shows the
  arenas are free chunks, full of stale pushes.

The checks use offheap's pieces directly (nmt, regions, dump of the SIGSTOPped JVM,
attribute, heap) and then ``offheap.investigate``, the one call a user makes, on the running
JVM. Type shares must match what the JVM reports within 10 % (relative). Every wait has a
timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

import offheap.heap as H
import offheap.manifest as M
from offheap import _impl, nmt, regions
from offheap.attribute import Attribution, attribute
from offheap.dump import dump_process
from offheap.proc import MemReader, load_snapshot
from offheap.records import RegionClass
from offheap.signatures import PayloadType, Signatures
from procs import end_process

pytestmark = pytest.mark.single_impl

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "jvm" / "PushServer.java"
JAVA = shutil.which("java")
JAVAC = shutil.which("javac")
JCMD = shutil.which("jcmd")
if JAVA is None:
    pytest.skip("java is not installed: the JVM end-to-end tests need a JDK (openjdk-17-jdk-headless)",
                allow_module_level=True)
if _impl.FORCED_PURE:
    # ~1 GB of dumps to attribute: minutes on the pure-Python twin (the kernels are
    # checked against it elsewhere); this file tests the workflow on a real JVM.
    pytest.skip("OFFHEAP_NO_EXTENSIONS=1: the JVM end-to-end tests need the compiled kernels",
                allow_module_level=True)

JVM_FLAGS = ["-Xmx256m", "-XX:NativeMemoryTracking=summary"]
READY_TIMEOUT = 90.0            # JVM start + the workload, on a busy 2-core machine
TTL = 300                       # the JVM exits by itself after this, should a kill be missed
KIB, MIB = 1 << 10, 1 << 20

# 4 workers x 200 connections x 48 KiB of pushes: ~39 MB of JSON in 800 zlib states (~160 MB).
LEAK_ARGS = ("leak", "4", "200", str(48 * KIB))
# 4 workers x 64 MiB in 32 KiB blocks (below the mmap threshold), 15/16 freed.
BURST_ARGS = ("burst", "4", "64", str(32 * KIB))

TYPES = ("unread_count", "presence", "message_new")
# Each type by its event name and by a field only it has: a freed chunk loses its first
# 16-32 bytes to malloc's list pointers, so one cut push may keep only the second pattern.
SIGNATURES = Signatures.from_types([
    PayloadType("unread_count", ['"event":"unread_count"', '"count":']),
    PayloadType("presence", ['"event":"presence"', '"last_seen":']),
    PayloadType("message_new", ['"event":"message_new"', '"msg_id":']),
])
SHARE_TOLERANCE = 0.10          # relative, on each type's share of the payload bytes


# -- running the JVM -----------------------------------------------------------------------

@dataclass
class PushServer:
    """A running PushServer: ``stats`` is the JSON of its READY line."""

    proc: subprocess.Popen
    stats: dict[str, Any]
    ready_seconds: float

    @property
    def pid(self) -> int:
        return self.proc.pid

    def payload(self, which: str) -> dict[str, int]:
        return {t: int(self.stats[which][t]) for t in TYPES}


@pytest.fixture(scope="module")
def launcher(tmp_path_factory) -> list[str]:
    """argv prefix running PushServer: compiled once by javac, else the source launcher."""
    if JAVAC is None:
        return [JAVA, *JVM_FLAGS, str(SOURCE)]
    out = tmp_path_factory.mktemp("pushserver")
    res = subprocess.run([JAVAC, "-nowarn", "-XDignore.symbol.file", "-d", str(out), str(SOURCE)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"javac failed:\n{res.stderr}"
    return [JAVA, *JVM_FLAGS, "-cp", str(out), "PushServer"]


@contextlib.contextmanager
def push_server(argv: list[str], *args: str) -> Iterator[PushServer]:
    """Start PushServer ARGS, wait (bounded) for its READY line, yield it, end it by PID."""
    t0 = time.monotonic()
    # stderr to a file: a pipe nobody reads could fill up and block the JVM.
    err_file = tempfile.TemporaryFile()
    proc = subprocess.Popen([*argv, *args, "--ttl", str(TTL)], stdout=subprocess.PIPE,
                            stderr=err_file, stdin=subprocess.DEVNULL)
    try:
        deadline = t0 + READY_TIMEOUT
        buf = b""
        fd = proc.stdout.fileno()
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                err_file.seek(0)
                err = err_file.read()
                raise AssertionError(f"PushServer {' '.join(args)} not READY after "
                                     f"{time.monotonic() - t0:.1f}s (exit {proc.poll()}): "
                                     f"{buf!r} {err.decode(errors='replace')[-2000:]}")
            if select.select([fd], [], [], min(left, 0.5))[0]:
                buf += os.read(fd, 65536)
        line = buf.split(b"\n", 1)[0].decode()
        assert line.startswith("READY "), line
        stats = json.loads(line[len("READY "):])
        assert stats["pid"] == proc.pid
        yield PushServer(proc, stats, time.monotonic() - t0)
    finally:
        end_process(proc)
        err_file.close()


@pytest.fixture(scope="class")
def leak_server(launcher) -> Iterator[PushServer]:
    with push_server(launcher, *LEAK_ARGS) as server:
        yield server


@pytest.fixture(scope="class")
def burst_server(launcher) -> Iterator[PushServer]:
    with push_server(launcher, *BURST_ARGS) as server:
        yield server


def _jcmd(pid: int):
    if JCMD is None:
        pytest.skip("jcmd is not installed")
    return nmt.run_jcmd(pid, "summary", timeout=60, jcmd=JCMD)


def _classified(pid: int):
    snap = load_snapshot(pid)
    with MemReader(pid) as reader:
        return snap, regions.classify(snap.mappings, reader=reader)


@dataclass
class Dumped:
    manifest: M.Manifest
    # per dumped region: (entry, Attribution)
    attributions: list[tuple[M.RegionEntry, Attribution]]

    def type_bytes(self) -> dict[str, int]:
        out = dict.fromkeys(TYPES, 0)
        for _, a in self.attributions:
            for t in TYPES:
                out[t] += a.class_bytes[t]
        return out


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    """SIGSTOP the JVM (waiting until it shows state T), SIGCONT on the way out.

    Reading a running process is not atomic: a JVM thread sharing a worker's arena may
    split or merge a chunk mid-read, and the walk would stop there. Stopped, the dump is
    a snapshot, so the direct checks below are exact.
    """
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rpartition(b")")[2].split()[0] in (b"T", b"t"):
                    break
            time.sleep(0.005)
        else:
            raise AssertionError(f"process {pid} did not stop within 10 s")
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def _dump_and_attribute(pid: int, out: Path) -> Dumped:
    """Dump the suspects (arena heaps, [heap]) of the stopped JVM; attribute each region."""
    with stopped(pid):
        m = dump_process(pid, out, method="mem", checksum=False)
    res = []
    for e in m.dumped():
        assert e.file_offset == 0
        res.append((e, attribute(M.region_file(m, e), SIGNATURES, base_address=e.start)))
    return Dumped(m, res)


@pytest.fixture(scope="class")
def leak_dump(leak_server, tmp_path_factory) -> Dumped:
    return _dump_and_attribute(leak_server.pid, tmp_path_factory.mktemp("leak") / "dump")


@pytest.fixture(scope="class")
def burst_dump(burst_server, tmp_path_factory) -> Dumped:
    return _dump_and_attribute(burst_server.pid, tmp_path_factory.mktemp("burst") / "dump")


def _investigate(pid: int, out: Path) -> tuple[Any, dict[str, Any]]:
    """``offheap.investigate`` on the running JVM (never stopped), and its report.json."""
    from offheap.investigate import investigate, load_report
    if JCMD is None:
        pytest.skip("jcmd is not installed: investigate could not read NMT")
    inv = investigate(pid, out, signatures=SIGNATURES, method="mem")
    return inv, load_report(out)


@pytest.fixture(scope="class")
def leak_investigation(leak_server, tmp_path_factory):
    return _investigate(leak_server.pid, tmp_path_factory.mktemp("leak-inv") / "inv")


@pytest.fixture(scope="class")
def burst_investigation(burst_server, tmp_path_factory):
    return _investigate(burst_server.pid, tmp_path_factory.mktemp("burst-inv") / "inv")


NATIVE_CLASSES = (str(RegionClass.ARENA_HEAP), str(RegionClass.MAIN_HEAP))


def _report_types(report: dict[str, Any], native_only: bool = False) -> dict[str, int]:
    """Payload bytes per type from report.json: over every dump, or over the glibc heaps."""
    if not native_only:
        by_name = {t["name"]: t["bytes"] for t in report["types"]}
        return {t: int(by_name.get(t, 0)) for t in TYPES}
    out = dict.fromkeys(TYPES, 0)
    for d in report["dumps"]:
        if d["class"] in NATIVE_CLASSES:
            for t in d["types"]:
                if t["name"] in out:
                    out[t["name"]] += t["bytes"]
    return out


def _shares(by_type: dict[str, int]) -> dict[str, float]:
    total = sum(by_type.values())
    assert total > 0, by_type
    return {t: v / total for t, v in by_type.items()}


def assert_shares_match(measured: dict[str, int], reported: dict[str, int], what: str) -> None:
    got, want = _shares(measured), _shares(reported)
    for t in TYPES:
        assert abs(got[t] - want[t]) <= SHARE_TOLERANCE * want[t], (
            f"{what}: {t} is {got[t]:.1%} of the payload bytes found, the JVM put {want[t]:.1%} "
            f"(found {measured}, reported {reported})")


# -- leak: Deflaters never end()ed ---------------------------------------------------------

class TestLeak:
    """One leaking JVM for these tests (class scope: it ends before the burst JVM starts)."""

    def test_leak_workload_reports_what_it_leaked(self, leak_server):
        s = leak_server.stats
        assert s["mode"] == "leak" and s["objects"] == 4 * 200
        live = leak_server.payload("live")
        assert all(v > 0 for v in live.values())
        assert sum(live.values()) > 30 * MIB
        assert s["freed_bytes"] == 0

    def test_nmt_does_not_see_the_deflaters(self, leak_server):
        """NMT's malloc total is small; arena + [heap] RSS minus it (the honest figure) is large."""
        report = _jcmd(leak_server.pid)
        assert report.enabled
        snap, regs = _classified(leak_server.pid)
        cmp = nmt.compare(report, regs, snap.rss)
        payload = leak_server.stats["live_bytes"]
        deflaters = leak_server.stats["objects"]
        # Each zlib deflate state is ~262 KiB; the window (64 KiB) and hash chains it writes
        # while compressing 48 KiB make well over 128 KiB of it resident.
        assert cmp.untracked >= deflaters * 128 * KIB, cmp
        assert cmp.untracked > payload
        # NMT sees none of it: its malloc total is a fraction of what the arenas hold. (It
        # swings from ~7 to ~35 MB while the JIT's arenas come and go after start-up.)
        assert report.malloc_total < 0.25 * (cmp.arena_rss + cmp.main_heap_rss), cmp
        # It is part of the RSS, not an artefact of committed-but-untouched memory.
        assert cmp.untracked < snap.rss

    def test_arena_heaps_are_found(self, leak_server):
        _, regs = _classified(leak_server.pid)
        heaps = [r for r in regs if r.cls is RegionClass.ARENA_HEAP and r.mapping.readable]
        big = [r for r in heaps if r.mapping.rss >= 16 * MIB]
        # Four workers, each with (usually) its own arena, each holding ~200 Deflaters (~40 MB).
        assert len(big) >= 2, [(hex(r.mapping.start), r.mapping.rss) for r in heaps]
        for r in big:
            assert r.mapping.start % regions.HEAP_MAX_SIZE == 0
            assert "heap_info" in r.evidence, r
            assert r.arena_id is not None and r.arena_id > 0
        arena_rss = sum(r.mapping.rss for r in heaps)
        assert arena_rss >= leak_server.stats["objects"] * 128 * KIB
        # The Java heap (64 MiB-aligned rw-p too, but no MAP_NORESERVE and no heap_info) is
        # not taken for an arena heap.
        java_like = [r for r in regs if r.mapping.perms == "rw-p" and r.mapping.is_anonymous
                     and r.mapping.start % regions.HEAP_MAX_SIZE == 0 and "nr" not in r.mapping.vmflags]
        assert java_like, "no Java heap mapping seen"
        assert all(r.cls is not RegionClass.ARENA_HEAP for r in java_like), java_like

    def test_leak_payload_types_attributed(self, leak_server, leak_dump):
        reported = leak_server.payload("live")
        found = leak_dump.type_bytes()
        assert_shares_match(found, reported, "leak")
        # Every byte the JVM fed a Deflater is in a zlib window exactly once; allow for the few
        # copies of the string constants the JVM keeps (symbol table) and nothing more.
        for t in TYPES:
            assert 0.95 * reported[t] <= found[t] <= 1.05 * reported[t], (t, found[t], reported[t])
        # And it is in the arena heaps, where the dump looked first.
        in_arenas = sum(a.class_bytes[t] for e, a in leak_dump.attributions if e.cls == "arena" for t in TYPES)
        assert in_arenas >= 0.95 * sum(reported.values())

    def test_investigate_leak(self, leak_server, leak_investigation):
        """The one call a user makes: NMT's blind spot, the arenas, the types in the right shares."""
        inv, report = leak_investigation
        reported = leak_server.payload("live")
        payload = sum(reported.values())
        assert report["target"]["pid"] == leak_server.pid and report["target"]["is_jvm"]
        # NMT: enabled, its malloc small; the honest untracked figure large.
        n = report["nmt"]
        assert n["enabled"] and n["malloc"] < 0.25 * (report["totals"]["arena_rss"] + report["totals"]["main_heap_rss"])
        assert n["untracked"] > payload
        assert n["untracked"] >= leak_server.stats["objects"] * 128 * KIB
        assert n["untracked"] == inv.comparison.untracked
        assert any("NMT cannot see" in line for line in report["summary"]), report["summary"]
        # The arena heaps were found and dumped.
        assert report["totals"]["arena_heaps"] >= 2
        assert report["totals"]["arena_rss"] >= leak_server.stats["objects"] * 128 * KIB
        arena_dumps = [d for d in report["dumps"] if d["class"] == str(RegionClass.ARENA_HEAP)]
        assert sum(d["present"] for d in arena_dumps) >= leak_server.stats["objects"] * 128 * KIB
        # The Java heap holds garbage copies of the pushes; it is not native memory, so it
        # is recognised (from NMT's reserved size) and not dumped.
        java = [r for r in report["regions"] if r["class"] == str(RegionClass.JAVA_HEAP)]
        assert java and not any(r["dumped"] for r in java), java
        # Types: the figures the user reads, and those of the glibc heaps (native memory).
        native = _report_types(report, native_only=True)
        assert_shares_match(native, reported, "investigate, glibc heaps")
        for label, found in (("all dumps", _report_types(report)), ("glibc heaps", native)):
            assert_shares_match(found, reported, f"investigate, {label}")
            for t in TYPES:
                assert 0.95 * reported[t] <= found[t] <= 1.05 * reported[t], (label, t, found[t], reported[t])
        # The Deflaters are alive: the pushes sit in in-use chunks, and the overall verdict says so.
        for t in report["types"]:
            if t["name"] in TYPES:
                assert t["live_bytes"] > t["free_bytes"], t
        # Each 64 KiB zlib window (one chunk) holds pushes of every type: split by type.
        live = {t["name"]: t["live_bytes"] for t in report["types"] if t["name"] in TYPES}
        assert_shares_match(live, reported, "investigate, in-use chunk bytes")
        overall = [v for v in report["verdicts"] if v.startswith("overall:")]
        assert overall and "live" in overall[0] and "freed-but-retained" not in overall[0], overall
        # Names every type in the summary a user reads first.
        text = (Path(inv.out_dir) / "summary.txt").read_text()
        assert all(t in text for t in TYPES), text


# -- burst: freed, but glibc keeps it ------------------------------------------------------

def _masked(path: str, chunks: H.HeapChunks, keep_free: bool) -> np.ndarray:
    """The dump with only the free (or only the in-use) chunks' bytes; the rest zeroed."""
    data = np.fromfile(path, dtype=np.uint8)
    out = np.zeros_like(data)
    keep = (chunks.state != H.IN_USE) if keep_free else (chunks.state == H.IN_USE)
    for off, size in zip(chunks.offset[keep].tolist(), chunks.size[keep].tolist()):
        out[off:off + size] = data[off:off + size]
    return out


class TestBurst:
    """One JVM after a burst of allocations, most of them freed."""

    def test_burst_nmt_peak_far_above_current(self, burst_server):
        report = _jcmd(burst_server.pid)
        assert report.enabled
        other = report.category("Other")        # Unsafe.allocateMemory's NMT category (JDK 9+)
        assert other is not None
        live, allocated = burst_server.stats["live_bytes"], burst_server.stats["allocated"]
        assert other.malloc >= live
        assert other.malloc < 2 * live
        assert other.malloc_peak is not None
        # All blocks are held at once before the frees (the workers wait for each other).
        assert other.malloc_peak >= allocated, other
        assert other.malloc_peak >= 8 * other.malloc, other

    def test_burst_rss_stays(self, burst_server):
        """The freed 15/16 are still resident in the arenas."""
        snap, regs = _classified(burst_server.pid)
        arena_rss = sum(r.mapping.rss for r in regs if r.cls is RegionClass.ARENA_HEAP)
        assert arena_rss >= 0.9 * burst_server.stats["allocated"]
        assert burst_server.stats["freed_bytes"] >= 0.9 * burst_server.stats["allocated"]

    def test_burst_heap_walk_says_retained_with_stale_payloads(self, burst_server, burst_dump):
        """Chunk headers: most arena bytes are free chunks, and the freed pushes are in them."""
        freed_reported = burst_server.payload("freed")
        live_reported = burst_server.payload("live")
        free_bytes = held = 0
        stale = dict.fromkeys(TYPES, 0)
        live = dict.fromkeys(TYPES, 0)
        walked = 0
        for e, a in burst_dump.attributions:
            if e.cls != "arena" or sum(a.class_bytes[t] for t in TYPES) < 4 * MIB:
                continue
            path = str(M.region_file(burst_dump.manifest, e))
            w = H.walk_heap(path, base_address=e.start)
            assert w.corruption is None, (hex(e.start), w.corruption)
            walked += 1
            free_bytes += w.free_bytes + w.top_touched
            held += w.in_use_bytes + w.free_bytes + w.top_touched
            assert w.verdict.startswith("retained: "), (hex(e.start), w.verdict)
            for keep_free, acc in ((True, stale), (False, live)):
                part = attribute(_masked(path, w.chunks, keep_free), SIGNATURES)
                for t in TYPES:
                    acc[t] += part.class_bytes[t]
        assert walked >= 2
        assert free_bytes / held >= 0.8, (free_bytes, held)
        # The stale pushes: nearly all the freed payload is still there, in free chunks, by type.
        assert_shares_match(stale, freed_reported, "burst, free chunks")
        assert sum(stale.values()) >= 0.75 * sum(freed_reported.values()), (stale, freed_reported)
        assert sum(stale.values()) <= 1.02 * sum(freed_reported.values()), (stale, freed_reported)
        # The live 16th blocks are whole, in in-use chunks.
        assert_shares_match(live, live_reported, "burst, in-use chunks")
        assert sum(live.values()) >= 0.9 * sum(live_reported.values()), (live, live_reported)

    def test_investigate_burst(self, burst_server, burst_investigation):
        """RSS, the stale pushes by type, and "freed-but-retained", from the one call."""
        inv, report = burst_investigation
        live_r, freed_r = burst_server.payload("live"), burst_server.payload("freed")
        allocated = burst_server.stats["allocated"]
        everything = {t: live_r[t] + freed_r[t] for t in TYPES}
        assert report["totals"]["rss"] >= allocated
        assert report["totals"]["arena_rss"] >= 0.9 * allocated
        assert any(line.startswith(f"PID {burst_server.pid} ") and "RSS" in line for line in report["summary"])
        # The stale payloads are found, by type, in the shares the JVM wrote them.
        native = _report_types(report, native_only=True)
        assert_shares_match(native, everything, "investigate burst, glibc heaps")
        assert sum(native.values()) >= 0.75 * sum(everything.values())
        assert_shares_match(_report_types(report), everything, "investigate burst, all dumps")
        assert sum(_report_types(report).values()) <= 1.05 * sum(everything.values())
        # ... in free chunks: whole-chunk bytes of the payload types are mostly free.
        free = sum(t["free_bytes"] for t in report["types"] if t["name"] in TYPES)
        live = sum(t["live_bytes"] for t in report["types"] if t["name"] in TYPES)
        assert free >= 0.75 * burst_server.stats["freed_bytes"], (free, live)
        assert free >= 8 * live, (free, live)
        # The verdicts: freed-but-retained overall, and NMT's peak far above its current figure.
        overall = [v for v in report["verdicts"] if v.startswith("overall:")]
        assert overall and "freed-but-retained" in overall[0], report["verdicts"]
        assert any("peak" in v and "far above" in v for v in report["verdicts"]), report["verdicts"]
        assert report["nmt"]["malloc_peak"] >= allocated
        assert report["nmt"]["malloc_peak"] >= 8 * report["nmt"]["malloc"] - allocated
        big = [d for d in report["dumps"] if d["class"] == str(RegionClass.ARENA_HEAP)
               and d["heap"] is not None and d["present"] >= 32 * MIB]
        assert len(big) >= 2
        # Each burst heap reads as retained; together they are mostly free. (One heap
        # alone may hold less: JVM threads that allocate after the burst, e.g. the JIT
        # under CPU contention, reuse its free chunks; a CI run saw 64 % in one.)
        for d in big:
            assert d["heap"]["free_share"] >= 0.5, (d["name"], d["verdict"])
            assert d["verdict"].startswith("retained: "), d["verdict"]
        weighted = sum(d["heap"]["free_share"] * d["present"] for d in big) / sum(d["present"] for d in big)
        assert weighted >= 0.8, [(d["name"], d["verdict"]) for d in big]

    def test_investigate_burst_free_bytes_per_type(self, burst_server, burst_investigation):
        """Whole free chunks, per type: glibc coalesced the freed blocks into chunks of
        ~480 KiB holding every type, so a chunk must be split between its types."""
        _, report = burst_investigation
        free = {t["name"]: t["free_bytes"] for t in report["types"] if t["name"] in TYPES}
        assert_shares_match(free, burst_server.payload("freed"), "investigate burst, free chunk bytes")
