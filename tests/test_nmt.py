"""NMT parsing (real JDK 17 captures, synthetic JDK 8/11/21/25 samples) and a live JVM."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from offheap import nmt, proc, regions
from offheap.errors import InputError, JcmdError, NoSuchProcess, ParseError, ToolMissing
from offheap.records import RegionClass
from shared_fixtures import fixture

pytestmark = pytest.mark.single_impl

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
KIB = 1024
MIB = 1024 * KIB


# --------------------------------------------------------------------------- real JDK 17 captures

def test_summary_jdk17_burst_peak_far_above_current():
    r = nmt.read_nmt(fixture("nmt_summary_jdk17_burst300.txt"))
    assert r.enabled and r.kind == "summary" and r.format == "jdk17" and r.pid == 18407
    assert (r.total_reserved, r.total_committed) == (1751667 * KIB, 367183 * KIB)
    assert (r.malloc_total, r.malloc_count) == (40091 * KIB, 234584)
    assert not r.malloc_total_derived
    assert (r.mmap_reserved, r.mmap_committed) == (1711576 * KIB, 327092 * KIB)
    assert len(r.categories) == 19
    other = r.category("Other")
    assert (other.malloc, other.malloc_count) == (19736 * KIB, 224634)
    assert (other.malloc_peak, other.malloc_peak_count) == (304503 * KIB, 3467016)
    assert not other.malloc_at_peak
    # the category figures add up to NMT's own malloc total (malloc + arena + NMT headers)
    cat_sum = sum(c.malloc + c.arena + c.values.get("tracking_overhead", 0) for c in r.categories)
    assert abs(cat_sum - r.malloc_total) <= len(r.categories) * KIB     # per-line KB rounding
    assert r.malloc_peak_derived and r.malloc_peak > 300 * MIB


def test_summary_jdk17_category_details():
    r = nmt.read_nmt(fixture("nmt_summary_jdk17_burst300.txt"))
    heap = r.category("java heap")
    assert (heap.reserved, heap.committed, heap.mmap_committed) == (262144 * KIB,) * 3
    assert heap.malloc == 0 and heap.malloc_peak is None
    thread = r.category("Thread")
    assert thread.values["threads"] == 28
    assert (thread.values["stack_reserved"], thread.values["stack_committed"]) == (28672 * KIB, 1740 * KIB)
    assert (thread.arena, thread.arena_count, thread.arena_peak) == (31 * KIB, 54, 285 * KIB)
    cls = r.category("Class")
    assert cls.values["classes"] == 778 and cls.values["instance_classes"] == 673
    assert cls.values["metadata_used"] == 767 * KIB and cls.values["class_space_waste"] == 119 * KIB
    assert r.category("Native Memory Tracking").values["tracking_overhead"] == 3665 * KIB
    symbol = r.category("Symbol")
    assert symbol.malloc_at_peak and symbol.arena_peak == symbol.arena == 360 * KIB


@pytest.mark.parametrize("name,other_kb", [
    ("nmt_summary_jdk17_unsafe300.txt", 315685),
    ("nmt_summary_jdk17_direct300.txt", 307200),
    ("nmt_summary_jdk17_deflater300.txt", None),     # zlib malloc is invisible to NMT
])
def test_summaries_other_category(name, other_kb):
    r = nmt.read_nmt(fixture(name))
    other = r.category("Other")
    if other_kb is None:
        assert other is None and r.malloc_total == 8536 * KIB
    else:
        assert other.malloc == other_kb * KIB and other.malloc_at_peak


def test_disabled():
    r = nmt.read_nmt(fixture("nmt_disabled_jdk17.txt"))
    assert not r.enabled and r.pid == 13741 and r.categories == ()


def test_detail_virtual_memory_map():
    r = nmt.read_nmt(fixture("nmt_detail_jdk17_deflater100.txt"))
    assert r.kind == "detail" and r.is_detail and r.malloc_total == 17000 * KIB
    assert len(r.categories) == 18 and len(r.virtual_regions) == 46
    heap = r.virtual_regions[0]
    assert (heap.start, heap.end, heap.category) == (0xF0000000, 0x100000000, "Java Heap")
    assert heap.reserved_committed and len(heap.committed) == 5
    assert heap.committed_size == 262144 * KIB
    assert heap.stack[0].startswith("[0x00007f3abfd1a27c] ReservedSpace::reserve")
    by_cat: dict[str, int] = {}
    for v in r.virtual_regions:
        by_cat[v.category] = by_cat.get(v.category, 0) + 1
    assert by_cat["Thread Stack"] == 28 and by_cat["Code"] == 4 and by_cat["Metaspace"] == 1
    meta = next(v for v in r.virtual_regions if v.category == "Metaspace")
    assert meta.size == 64 * MIB and meta.committed_size == (64 + 512 + 256) * KIB


# --------------------------------------------------------------------------- other JDKs (synthetic)

def test_jdk8_direct_buffers_under_internal():
    r = nmt.read_nmt(DATA / "nmt_summary_jdk8_direct300.txt")
    assert r.format == "jdk8" and r.mmap_reserved is None
    assert r.category("Internal").malloc == 307443 * KIB
    assert r.category("Thread").values["threads"] == 20
    assert r.category("Arena Chunk").malloc_count == 0           # JDK 8 prints no count for chunks
    # no "malloc:" line before JDK 17: derived from the categories, NMT headers included
    assert r.malloc_total_derived and r.malloc_total == 313205 * KIB
    assert r.malloc_peak is None
    assert (r.total_reserved, r.total_committed) == (1920709 * KIB, 422377 * KIB)


def test_jdk11_metadata_and_other():
    r = nmt.read_nmt(DATA / "nmt_summary_jdk11_direct300.txt")
    assert r.format == "jdk11" and len(r.categories) == 15
    assert r.category("Other").malloc == 306000 * KIB
    cls = r.category("Class")
    assert cls.values["array_classes"] == 180 and cls.values["metadata_free"] == 418 * KIB
    assert r.malloc_total_derived


def test_jdk21_peaks_and_readonly():
    r = nmt.read_nmt(DATA / "nmt_summary_jdk21_burst300.txt")
    assert r.format == "jdk21" and not r.malloc_total_derived
    assert (r.malloc_total, r.malloc_count) == (2243 * KIB, 17981)
    other = r.category("Other")
    assert other.malloc == 32 * KIB and other.malloc_peak == 307200 * KIB
    assert r.malloc_peak_derived and r.malloc_peak >= 307200 * KIB
    thread = r.category("Thread")
    assert thread.values["threads"] == 19 and thread.values["stack_peak"] == 1020 * KIB
    assert r.category("Java Heap").mmap_peak == 16384 * KIB                 # "at peak"
    assert r.category("Shared class space").values["readonly"] == 6016 * KIB
    compiler = r.category("Compiler")
    assert compiler.arena == 0 and compiler.arena_peak == 12034 * KIB


def test_jdk25_total_malloc_peak():
    r = nmt.read_nmt(DATA / "nmt_summary_jdk25_burst300.txt")
    assert r.format == "jdk25"
    assert r.malloc_peak == 309870 * KIB and not r.malloc_peak_derived


def test_summary_diff_deltas():
    r = nmt.read_nmt(DATA / "nmt_summary_diff_jdk21_direct300.txt")
    assert r.kind == "summary.diff" and r.is_diff
    assert r.total_deltas == {"reserved": 306012 * KIB, "committed": 306012 * KIB}
    other = r.category("Other")
    assert other.malloc == 305008 * KIB
    assert other.deltas["malloc"] == 305000 * KIB and other.deltas["malloc_count"] == 76250
    thread = r.category("Thread")
    assert thread.deltas["threads"] == 1 and thread.deltas["arena"] == -4 * KIB
    assert thread.deltas["stack_committed"] == 72 * KIB
    cls = r.category("Class")
    assert cls.deltas["instance_classes"] == 4 and cls.deltas["metadata_waste"] == -6 * KIB
    nmt_cat = r.category("Native Memory Tracking")
    assert nmt_cat.deltas["tracking_overhead"] == -18 * KIB


# --------------------------------------------------------------------------- malformed

def _lines(name: str) -> list[str]:
    return fixture(name).read_text().splitlines(keepends=True)


def test_truncated_category_line_names_line():
    lines = _lines("nmt_summary_jdk17_burst300.txt")
    i = next(n for n, ln in enumerate(lines) if "Java Heap" in ln)
    lines[i] = "-                 Java Heap (reserved=262144KB)\n"
    with pytest.raises(ParseError) as info:
        nmt.parse_nmt("".join(lines), "bad.txt")
    assert info.value.line == i + 1 and "bad.txt" in str(info.value)


def test_garbage_line_names_line():
    lines = _lines("nmt_summary_jdk17_burst300.txt")
    lines.insert(12, "garbage here\n")
    with pytest.raises(ParseError) as info:
        nmt.parse_nmt("".join(lines), "bad.txt")
    assert info.value.line == 13


def test_not_nmt_at_all():
    with pytest.raises(ParseError):
        nmt.parse_nmt(b"", "empty")
    with pytest.raises(ParseError) as info:
        nmt.parse_nmt(b"1234:\nhello world\n", "x")
    assert info.value.line == 2
    with pytest.raises(ParseError, match="Total"):
        nmt.parse_nmt(b"\nNative Memory Tracking:\n\n", "x")
    with pytest.raises(ParseError, match="baseline"):
        nmt.parse_nmt(b"1:\nNo baseline for comparison\n", "x")


def test_missing_file():
    with pytest.raises(InputError):
        nmt.read_nmt(HERE / "no-such-nmt.txt")


# --------------------------------------------------------------------------- jcmd errors

def test_jcmd_dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    with pytest.raises(NoSuchProcess):
        nmt.run_jcmd(p.pid)


def test_jcmd_missing_tool():
    with pytest.raises(ToolMissing):
        nmt.run_jcmd(os.getpid(), jcmd="/nonexistent/jcmd")


def test_jcmd_refuses_stopped_target_instead_of_hanging():
    p = subprocess.Popen(["sleep", "60"])
    try:
        os.kill(p.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while proc.read_status(p.pid).state != "T":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with pytest.raises(JcmdError, match="stopped"):
            nmt.run_jcmd(p.pid, timeout=5)
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()


def test_bad_mode():
    with pytest.raises(InputError):
        nmt.jcmd_argv(1, "everything")


# --------------------------------------------------------------------------- a real JVM

JAVA = shutil.which("java")
JCMD = shutil.which("jcmd")
needs_jdk = pytest.mark.skipif(not (JAVA and JCMD), reason="java and jcmd not installed")
READY_TIMEOUT = 60.0


class Jvm:
    def __init__(self, *jvm_args: str, deflaters: int = 20):
        # The single-file source launcher compiles NmtIdle.java in memory: no build step.
        self.proc = subprocess.Popen(
            [JAVA, "-Xmx64m", "-XX:+UseSerialGC", *jvm_args, str(HERE / "live" / "NmtIdle.java"),
             str(deflaters)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.pid = self.proc.pid
        # jcmd before the JVM installed its signal handlers kills it: wait for "ready".
        ready, _, _ = select.select([self.proc.stdout], [], [], READY_TIMEOUT)
        line = self.proc.stdout.readline() if ready else b""
        if not line.startswith(b"ready "):
            self.close()
            raise AssertionError(f"JVM did not start: {line!r} {self.proc.stderr.read()!r}")

    def jcmd(self, mode: str) -> "nmt.NmtReport":
        # The attach listener starts lazily; retry a few times with a bounded timeout.
        last: Exception | None = None
        for _ in range(5):
            try:
                return nmt.run_jcmd(self.pid, mode, timeout=30)
            except JcmdError as exc:
                last = exc
                time.sleep(0.5)
        raise AssertionError(f"jcmd never answered: {last}")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            f.close()


@pytest.fixture(scope="module")
def jvm_detail():
    jvm = Jvm("-XX:NativeMemoryTracking=detail")
    try:
        yield jvm
    finally:
        jvm.close()


@needs_jdk
def test_live_jvm_nmt_summary_and_detail(jvm_detail):
    summary = jvm_detail.jcmd("summary")
    assert summary.enabled and summary.kind == "summary" and summary.pid == jvm_detail.pid
    assert summary.category("Java Heap").reserved == 64 * MIB
    # the 4 MiB direct ByteBuffer is malloc'd through NMT ("Other" since JDK 11)
    assert summary.category("Other").malloc >= 4 * MIB
    detail = jvm_detail.jcmd("detail")
    assert detail.is_detail and detail.virtual_regions
    heap = [v for v in detail.virtual_regions if v.category == "Java Heap"]
    assert len(heap) == 1 and heap[0].size == 64 * MIB

    # Classify the live smaps with NMT detail and real memory: the Java heap is
    # named by NMT, and every arena heap passed the heap_info check.
    maps = proc.read_smaps(jvm_detail.pid)
    with proc.MemReader(jvm_detail.pid) as rd:
        rs = regions.classify(maps, nmt=detail, reader=rd)
    java = [r for r in rs if r.cls is RegionClass.JAVA_HEAP]
    assert java and all(heap[0].start <= r.start < heap[0].end for r in java)
    arena = [r for r in rs if r.cls is RegionClass.ARENA_HEAP]
    assert arena and all("heap_info" in r.evidence for r in arena)
    assert all(r.arena_base is not None for r in arena)
    # compare(): 20 leaked Deflaters (~256 KiB zlib state each) are malloc'd outside NMT
    cmp = nmt.compare(detail, rs)
    assert cmp.arena_rss + cmp.main_heap_rss > 0
    assert any(r.cls is RegionClass.ARENA_HEAP for r in cmp.unknown)


@needs_jdk
def test_live_jvm_jcmd_timeout_kills_jcmd(jvm_detail):
    # jcmd is itself a JVM: it cannot answer in 10 ms, so the timeout path runs for real.
    with pytest.raises(JcmdError, match="did not answer"):
        nmt.run_jcmd(jvm_detail.pid, "summary", timeout=0.01)
    assert jvm_detail.proc.poll() is None      # the target survived


@needs_jdk
def test_live_jvm_nmt_off():
    jvm = Jvm(deflaters=1)
    try:
        r = jvm.jcmd("summary")
        assert not r.enabled and r.pid == jvm.pid
    finally:
        jvm.close()
