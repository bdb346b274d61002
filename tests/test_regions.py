"""Region classification: real captures, a synthetic lookalike, and live glibc arenas."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from offheap import nmt, proc, regions
from offheap.records import RegionClass
from shared_fixtures import fixture
from procs import end_process

pytestmark = pytest.mark.single_impl

HERE = Path(__file__).resolve().parent
KIB = 1024
MIB = 1024 * KIB
HEAP = 64 * MIB


def smaps(name: str):
    return proc.parse_smaps(fixture(f"{name}.smaps").read_bytes())


def by_class(rs, cls):
    return [r for r in rs if r.cls is cls]


# --------------------------------------------------------------------------- captures

def test_c_8x60mb_arena_heaps():
    rs = regions.classify(smaps("c_8x60MB"))
    arena = by_class(rs, RegionClass.ARENA_HEAP)
    rw = [r for r in arena if r.mapping.readable]
    assert len(rw) == 16 and all(r.start % HEAP == 0 for r in rw)
    full = [r for r in rw if r.size == HEAP]
    assert len(full) == 8 and all(r.rss == 65536 * KIB for r in full)
    # partial heaps: rw part + ---p remainder make exactly 64 MiB
    assert sum(r.size for r in arena) == 16 * HEAP
    assert all("nr" in r.evidence and "shape" in r.evidence for r in arena)
    tot = {t.cls: t for t in regions.totals(rs)}
    assert tot[RegionClass.ARENA_HEAP].rss == 571768 * KIB
    assert tot[RegionClass.MAIN_HEAP].rss == 8 * KIB and tot[RegionClass.MAIN_HEAP].count == 1
    assert sum(t.rss for t in tot.values()) == 617892 * KIB
    # 8 thread stacks found by their guard page, plus the main [stack]
    stacks = [r for r in by_class(rs, RegionClass.THREAD_STACK) if r.mapping.readable]
    assert len(stacks) == 9 and sum(1 for r in stacks if r.mapping.path == "[stack]") == 1
    # without heap_info, every heap is its own arena; the main arena is id 0
    ars = regions.arenas(rs)
    assert [a.arena_id for a in ars] == list(range(17))
    assert ars[0].regions[0].mapping.path == "[heap]" and all(a.base is None for a in ars)
    assert all(a.size == HEAP for a in ars[1:])


def test_jvm_java_heap_is_not_an_arena():
    rs = regions.classify(smaps("jvm_deflater600"))
    java = next(r for r in rs if r.start == 0xF0000000)
    assert java.cls is RegionClass.ANON and java.arena_id is None
    arena = by_class(rs, RegionClass.ARENA_HEAP)
    assert len([r for r in arena if r.mapping.readable]) == 23
    assert not any(0xF0000000 <= r.start < 0x100000000 for r in arena)
    # the near-empty helper-thread arena is there, and small
    helper = next(r for r in arena if r.start == 0x7FCE4C000000)
    assert helper.rss == 8 * KIB
    tot = {t.cls: t for t in regions.totals(rs)}
    assert tot[RegionClass.ARENA_HEAP].rss == 495204 * KIB


def test_nmt_detail_names_the_java_heap():
    report = nmt.read_nmt(fixture("nmt_detail_jdk17_deflater100.txt"))
    rs = regions.classify(smaps("jvm_deflater600"), nmt=report)
    java = [r for r in rs if r.cls is RegionClass.JAVA_HEAP]
    # the reservation holds 3 anonymous parts and 2 CDS archive parts mapped from classes.jsa
    assert [r.start for r in java] == [0xF0000000, 0xFFE00000, 0xFFE75000, 0xFFF00000, 0xFFF78000]
    assert all(r.label == "Java Heap" and r.evidence == "nmt" for r in java)
    unknown = regions.unknown_to_nmt(rs)
    assert unknown and not any(r.cls is RegionClass.JAVA_HEAP for r in unknown)
    assert any(r.cls is RegionClass.ARENA_HEAP for r in unknown)


def _lookalike(vmflags: str) -> bytes:
    # A -Xmx64m Java heap: one 64 MiB-aligned, 64 MiB rw-p anonymous block.
    return (b"7f0000000000-7f0004000000 rw-p 00000000 00:00 0 \n"
            b"Size:              65536 kB\nRss:                1024 kB\n"
            b"VmFlags: " + vmflags.encode() + b"\n")


def test_alignment_and_size_alone_are_not_enough():
    (java,) = regions.classify(proc.parse_smaps(_lookalike("rd wr mr mw me ac")))
    assert java.cls is RegionClass.ANON
    (heap,) = regions.classify(proc.parse_smaps(_lookalike("rd wr mr mw me nr")))
    assert heap.cls is RegionClass.ARENA_HEAP and heap.evidence == "shape+nr"
    # memory says "not a heap_info" (an all-zero Java heap page): not an arena, whatever the flags
    (zeros,) = regions.classify(proc.parse_smaps(_lookalike("rd wr mr mw me nr")),
                                reader=lambda addr, n: bytes(n))
    assert zeros.cls is RegionClass.ANON
    # maps only: the shape is all there is, and the evidence says so
    (shape,) = regions.classify(proc.parse_maps(b"7f0000000000-7f0004000000 rw-p 00000000 00:00 0\n"))
    assert shape.cls is RegionClass.ARENA_HEAP and shape.evidence == "shape"


def test_parse_heap_info_rules():
    base = 0x7F0000000000
    first = struct.pack("<5Q", base + 0x30, 0, 0x21000, 0x21000, 4096)
    hi = regions.parse_heap_info(base, first, 0x21000)
    assert hi is not None and hi.is_first
    second = struct.pack("<5Q", base + 0x30, base, 0x4000000, 0x4000000, 4096)
    hi2 = regions.parse_heap_info(base + HEAP, second, HEAP)
    assert hi2 is not None and not hi2.is_first
    bad = [
        struct.pack("<5Q", base + 0x30, 0, 0x21001, 0x22000, 4096),     # size not page-aligned
        struct.pack("<5Q", base + 0x30, 0, 0x22000, 0x21000, 4096),     # size > mprotect_size
        struct.pack("<5Q", base + 0x30, 0, 0x8000000, 0x8000000, 4096),  # > 64 MiB
        struct.pack("<5Q", base + 0x1234, 0, 0x21000, 0x21000, 4096),    # ar_ptr nowhere
        struct.pack("<5Q", base + 0x30, base + 0x1000, HEAP, HEAP, 4096),  # prev not a heap
    ]
    for data in bad:
        assert regions.parse_heap_info(base + HEAP, data, HEAP) is None
    assert regions.parse_heap_info(base, first, 0x1000) is None          # larger than the rw part
    assert regions.parse_heap_info(base, first[:20], 0x21000) is None


def test_maps_only_classification():
    rs = regions.classify(proc.parse_maps(fixture("jvm_deflater600.maps").read_bytes()))
    java = next(r for r in rs if r.start == 0xF0000000)
    assert java.cls is RegionClass.ANON          # 254 MiB: wrong shape even without smaps
    arena = [r for r in by_class(rs, RegionClass.ARENA_HEAP) if r.mapping.readable]
    assert len(arena) == 23 and all(r.evidence == "shape" for r in arena)


# --------------------------------------------------------------------------- live glibc arenas

ARENA_CHILD = r"""
import ctypes, sys, threading, time
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
threads, blocks = int(sys.argv[1]), int(sys.argv[2])
barrier = threading.Barrier(threads + 1)
keep = []
def work():
    # 100 kB blocks stay below the mmap threshold: they land in this thread's arena
    for _ in range(blocks):
        p = libc.malloc(100_000)
        libc.memset(p, 0x41, 100_000)
        keep.append(p)
    barrier.wait()
    time.sleep(600)
for _ in range(threads):
    threading.Thread(target=work, daemon=True).start()
barrier.wait()
print("ready", flush=True)
time.sleep(600)
"""


def _run_arena_child(threads: int, blocks: int, env=None):
    p = subprocess.Popen([sys.executable, "-c", ARENA_CHILD, str(threads), str(blocks)],
                         stdout=subprocess.PIPE, env=env)
    line = p.stdout.readline()
    return p, line


def test_live_arenas_chained_by_heap_info():
    # 3 threads x 80 MB: each thread's arena needs two 64 MiB heaps.
    p, line = _run_arena_child(3, 800)
    try:
        assert line == b"ready\n"
        maps = proc.read_smaps(p.pid)
        with proc.MemReader(p.pid) as rd:
            rs = regions.classify(maps, reader=rd)
    finally:
        end_process(p)
    arena = by_class(rs, RegionClass.ARENA_HEAP)
    assert all("heap_info" in r.evidence and "nr" in r.evidence for r in arena)
    ars = [a for a in regions.arenas(rs) if a.arena_id != 0]
    big = [a for a in ars if a.rss >= 75 * MIB]
    assert len(big) == 3
    for a in big:
        assert a.heap_count == 2 and a.size == 2 * HEAP
        assert a.base is not None and a.base % HEAP == 0x30       # glibc 2.36 heap_info is 48 bytes
        # the first heap holds malloc_state; later heaps may sit below it (mmap grows down)
        assert a.base - 0x30 in {r.mapping.start for r in a.regions}


def test_live_arena_max_1_puts_everything_in_heap():
    env = dict(os.environ, MALLOC_ARENA_MAX="1")
    p, line = _run_arena_child(3, 200)
    q, qline = _run_arena_child(3, 200, env)
    try:
        assert line == qline == b"ready\n"
        with proc.MemReader(p.pid) as rd:
            many = regions.classify(proc.read_smaps(p.pid), reader=rd)
        with proc.MemReader(q.pid) as rd:
            one = regions.classify(proc.read_smaps(q.pid), reader=rd)
        assert proc.malloc_settings(proc.read_environ(q.pid)).arena_max == 1
    finally:
        end_process(p)
        end_process(q)
    assert sum(r.rss for r in by_class(many, RegionClass.ARENA_HEAP)) >= 55 * MIB
    assert not by_class(one, RegionClass.ARENA_HEAP)
    assert sum(r.rss for r in by_class(one, RegionClass.MAIN_HEAP)) >= 55 * MIB


def test_nmt_summary_finds_the_java_heap_by_its_reserved_size():
    # summary mode has no address map: the run of anonymous mappings spanning exactly
    # the "Java Heap" reservation (CDS archive parts inside it) is the heap
    report = nmt.read_nmt(fixture("nmt_summary_jdk17_deflater300.txt"))
    assert not report.virtual_regions
    rs = regions.classify(smaps("jvm_deflater600"), nmt=report)
    java = [r for r in rs if r.cls is RegionClass.JAVA_HEAP]
    assert [r.start for r in java] == [0xF0000000, 0xFFE75000, 0xFFF78000]   # the .jsa parts stay files
    assert all(r.evidence == "nmt-reserved-size" for r in java)
    assert sum(r.size for r in rs if 0xF0000000 <= r.start < 0x100000000) == report.category("Java Heap").reserved
    # NMT off: nothing to go on, nothing is called the Java heap
    off = nmt.read_nmt(fixture("nmt_disabled_jdk17.txt"))
    assert not any(r.cls is RegionClass.JAVA_HEAP for r in regions.classify(smaps("jvm_deflater600"), nmt=off))
