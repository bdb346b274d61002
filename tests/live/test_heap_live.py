"""walk_heap against real glibc heaps of C workloads built at test time (heapwork.c).

Each workload allocates in a new thread (a non-main arena heap) or in the main thread
(``[heap]``), prints its own accounting in chunk bytes and sleeps; the test reads the
heap through /proc/PID/mem (read-only, os.pread), walks it and compares the totals. The
margins are what glibc itself allocates there: the thread's tcache_perthread_struct
(0x290), and in ``[heap]`` the main thread's one plus libc's start-up allocations.
In ``[heap]`` the main arena's malloc_state is found in libc (``main_arena.read_main_arena``)
so that its fastbins and bins are followed too. A JVM workload (jvm_unsafe/UnsafeBurst.java)
Unsafe-allocates and frees buffers; a fill past 64 MiB walks an arena's second heap.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from offheap import heap as H
from offheap.main_arena import read_main_arena
from offheap.proc import parse_maps, read_maps
from procs import compile_c

pytestmark = pytest.mark.single_impl

HERE = Path(__file__).resolve().parent
HEAP_MAX = 64 << 20
ARENA_SLACK = 4096           # the thread's tcache struct and nothing else of glibc's
MAIN_SLACK = 64 << 10        # [heap]: libc/ld.so start-up allocations, the main tcache
_GLIBC = os.confstr("CS_GNU_LIBC_VERSION") or "glibc 0.0"
GLIBC = tuple(int(x) for x in _GLIBC.split()[-1].split(".")[:2])


@pytest.fixture(scope="module")
def heapwork(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("heapwork") / "heapwork"
    res = compile_c(HERE / "heapwork.c", out, "-Wall")
    assert res.returncode == 0, res.stderr
    return out


@contextlib.contextmanager
def running(binary: Path, *args: str):
    """Start the workload, yield (pid, its accounting dict); always SIGKILL it by PID."""
    with running_cmd([str(binary), *args]) as got:
        yield got


@contextlib.contextmanager
def running_cmd(cmd: list[str], timeout: float = 20):
    """Start ``cmd``, wait for its accounting line, yield (pid, dict); SIGKILL by PID after."""
    args = cmd[1:]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        line = b""
        deadline = time.monotonic() + timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            assert left > 0 and proc.poll() is None, f"heapwork {args} did not report: {line!r}"
            if select.select([proc.stdout], [], [], min(left, 0.5))[0]:
                chunk = os.read(proc.stdout.fileno(), 4096)
                line += chunk
        stats = dict(kv.split("=", 1) for kv in line.decode().split())
        yield proc.pid, {k: int(v, 0) for k, v in stats.items()}
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def read_heap(pid: int, ptr: int, where: str) -> tuple[int, bytes]:
    """The rw-p heap holding ``ptr``: a non-main heap from its 64 MiB base, or [heap]."""
    with open(f"/proc/{pid}/maps", "rb") as f:
        maps = parse_maps(f.read())
    if where == "thread":
        base = ptr & ~(HEAP_MAX - 1)
        m = next(m for m in maps if m.start == base and m.perms.startswith("rw"))
    else:
        m = next(m for m in maps if m.path == "[heap]")
        assert m.start <= ptr < m.end
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        data = os.pread(fd, m.end - m.start, m.start)
    finally:
        os.close(fd)
    assert len(data) == m.end - m.start
    return m.start, data


@pytest.mark.parametrize("where", ["thread", "main"])
@pytest.mark.parametrize("mode", ["leak", "burst", "mix"])
def test_walk_agrees_with_the_workload(heapwork, mode, where):
    with running(heapwork, mode, where, "2000") as (pid, acct):
        base, data = read_heap(pid, acct["ptr"], where)
        arena = read_main_arena(pid) if where == "main" else None
    # Let the walker find the base itself for arena heaps; [heap] gets it from maps.
    w = H.walk_heap(data, base_address=None if where == "thread" else base, kind="auto")
    assert w.corruption is None, w.corruption
    assert w.end_reason == "end of heap"
    assert w.base_address == base
    assert w.layout.kind == ("arena" if where == "thread" else "main")
    live, freed, fast = acct["live"], acct["freed"], acct["fast_freed"]
    if where == "thread":
        assert w.layout.first_heap and w.layout.malloc_state_offset is not None
        assert 0 <= w.in_use_bytes - live <= ARENA_SLACK
        assert w.free_bytes == freed  # every freed byte is in a tcache, fastbin or bin
    else:
        # The main arena's fastbins live in libc's main_arena: those chunks look in use.
        assert 0 <= w.in_use_bytes - live <= MAIN_SLACK + fast
        assert freed - fast <= w.free_bytes <= freed + MAIN_SLACK
    if mode == "leak":
        assert w.verdict.startswith("live: ")
        assert freed == 0
    if mode == "burst":
        assert w.verdict.startswith("retained: ")
        assert w.bytes_by_state["tcache"] > 0
    if mode == "mix":
        assert w.bytes_by_state["tcache"] > 0
        assert w.bytes_by_state["smallbin"] + w.bytes_by_state["largebin"] + w.bytes_by_state["unsorted"] > 0
        if where == "thread":
            assert w.bytes_by_state["fastbin"] > 0
            listed = w.chunks.state != H.IN_USE
            assert (w.chunks.certainty[listed & (w.chunks.state != H.TOP)] >= H.LIKELY).all()
    if GLIBC >= (2, 32) and (where == "thread" or mode != "leak"):  # a leak frees nothing: no list to tell by in [heap]
        assert w.layout.safe_linking is True  # safe-linking since glibc 2.32
    assert w.anomalies == 0, w.anomaly_kinds
    if where == "main":
        # With main_arena from libc, [heap] is walked as exactly as an arena heap.
        assert arena is not None and arena.found_by == "libc scan"
        assert base <= arena.top < base + len(data)
        wm = H.walk_heap(data, base_address=base, kind="main", arena_state=arena.data,
                         arena_address=arena.address)
        assert wm.arena_state_source == "given" and wm.anomalies == 0, wm.anomaly_kinds
        assert wm.chunks.certainty[-1] == H.CERTAIN  # malloc_state.top names the top chunk
        assert 0 <= wm.in_use_bytes - live <= MAIN_SLACK
        assert freed <= wm.free_bytes <= freed + ARENA_SLACK
        fastc = wm.chunks.state == H.FAST
        assert (wm.chunks.certainty[fastc] == H.CERTAIN).all()
        assert wm.bytes_by_state["fastbin"] <= fast
        if mode == "mix":
            # fastbin-range frees beyond the 7 per size tcache holds sit in main_arena's fastbins
            assert wm.bytes_by_state["fastbin"] > 0
            assert wm.bytes_by_state["fastbin"] == w.bytes_by_state["in use"] - wm.bytes_by_state["in use"]
        listed = (wm.chunks.state != H.IN_USE) & (wm.chunks.state != H.TOP)
        assert (wm.chunks.certainty[listed] == H.CERTAIN).all()


def _arena_heaps(pid: int, ptr: int) -> list[tuple[int, bytes]]:
    """Every heap of the arena holding ``ptr``, first heap first: (base, rw bytes)."""
    maps = read_maps(pid)
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    try:
        heaps = {}
        for m in maps:
            if m.start % HEAP_MAX or m.path or not m.perms.startswith("rw"):
                continue
            heaps[m.start] = os.pread(fd, m.end - m.start, m.start)
    finally:
        os.close(fd)
    word = lambda b, i: int.from_bytes(b[8 * i:8 * i + 8], "little")
    home = heaps[ptr & ~(HEAP_MAX - 1)]
    ar = word(home, 0)
    chain = [(b, d) for b, d in heaps.items() if len(d) >= 48 and word(d, 0) == ar]
    return sorted(chain, key=lambda bd: (word(bd[1], 1) != 0, bd[0]))


def test_later_heap_of_an_arena(heapwork):
    """An arena grown past 64 MiB: its second heap has heap_info.prev != 0 and no
    malloc_state; the first heap's malloc_state is given to follow its lists."""
    with running(heapwork, "fill", "thread", "100") as (pid, acct):
        heaps = _arena_heaps(pid, acct["ptr"])
    assert len(heaps) >= 2
    (b1, d1), (b2, d2) = heaps[0], heaps[1]
    w1 = H.walk_heap(d1, base_address=b1, kind="arena")
    assert w1.layout.first_heap and w1.end_reason == "fencepost" and w1.corruption is None
    hdr = w1.layout.heap_info_size
    assert int.from_bytes(d2[8:16], "little") == b1  # heap_info.prev
    state, state_at = d1[hdr:hdr + w1.layout.malloc_state_size], b1 + hdr
    bare = H.walk_heap(d2, base_address=b2, kind="arena")
    w2 = H.walk_heap(d2, base_address=b2, kind="arena", arena_state=state, arena_address=state_at)
    for w in (bare, w2):
        assert not w.layout.first_heap and w.corruption is None and w.end_reason == "end of heap"
        assert w.chunks.offset[0] == hdr
    assert bare.arena_state_source is None and w2.arena_state_source == "given"
    # The given malloc_state adds the fastbin chunks (boundary tags call them in use)
    # and proves bin membership.
    assert w2.bytes_by_state["fastbin"] > 0 and bare.bytes_by_state["fastbin"] == 0
    assert w2.free_bytes == bare.free_bytes + w2.bytes_by_state["fastbin"]
    assert (w2.chunks.certainty[w2.chunks.state == H.FAST] == H.CERTAIN).all()
    binned = (w2.chunks.state >= H.UNSORTED) & (w2.chunks.state <= H.LARGE)
    assert (w2.chunks.certainty[binned] == H.CERTAIN).sum() > (bare.chunks.certainty[binned] == H.CERTAIN).sum()
    assert w2.chunks.certainty[-1] == H.CERTAIN  # the arena's top is in the newest heap
    assert w1.anomalies == 0 and w2.anomalies == 0, (w1.anomaly_kinds, w2.anomaly_kinds)
    walks = [w1, w2] + [H.walk_heap(d, base_address=b, kind="arena", arena_state=state, arena_address=state_at)
                        for b, d in heaps[2:]]
    in_use = sum(w.in_use_bytes for w in walks)
    free = sum(w.free_bytes for w in walks)
    # Fastbin lists start at their newest chunk, in the second heap; where one runs on
    # into the first heap, that heap's walk has no way in, so those chunks stay in use.
    fast = acct["fast_freed"]
    assert 0 <= in_use - acct["live"] <= ARENA_SLACK + fast
    # glibc frees the old top of a full heap (less its fenceposts) into the bins.
    assert -fast <= free - acct["freed"] <= 64 << 10
    assert in_use + free == pytest.approx(acct["live"] + acct["freed"], abs=64 << 10)


# -- the JVM: Unsafe.allocateMemory / freeMemory ---------------------------------------

@pytest.fixture(scope="module")
def unsafe_burst(tmp_path_factory) -> Path:
    javac = shutil.which("javac")
    if javac is None or shutil.which("java") is None:
        pytest.skip("a JDK (java, javac) is not installed")
    out = tmp_path_factory.mktemp("unsafeburst")
    res = subprocess.run([javac, "-nowarn", "-d", str(out), str(HERE / "jvm_unsafe" / "UnsafeBurst.java")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return out


def test_jvm_unsafe_burst_is_retained(unsafe_burst):
    """Unsafe.allocateMemory 20,000 JSON buffers (~34 MB), freeMemory 15 of 16: the
    arena heap holding them must read as retained, freed bytes as the JVM reported."""
    cmd = [shutil.which("java"), "-Xmx64m", "-XX:TieredStopAtLevel=1", "-cp", str(unsafe_burst),
           "UnsafeBurst", "20000"]
    with running_cmd(cmd, timeout=30) as (pid, acct):
        heaps = _arena_heaps(pid, acct["ptr"])
    walks = []
    for i, (b, d) in enumerate(heaps):
        w = H.walk_heap(d, base_address=b, kind="arena")
        if i:  # a later heap of the arena: the first heap's malloc_state follows its lists
            hdr = walks[0].layout.heap_info_size
            w = H.walk_heap(d, base_address=b, kind="arena", arena_state=heaps[0][1][hdr:hdr + 0x898],
                            arena_address=heaps[0][0] + hdr)
        assert w.corruption is None, w.corruption
        walks.append(w)
    home = next(w for (b, _), w in zip(heaps, walks) if b == acct["ptr"] & ~(HEAP_MAX - 1))
    assert home.verdict.startswith("retained: "), home.verdict
    free = sum(w.free_bytes for w in walks)
    in_use = sum(w.in_use_bytes for w in walks)
    # The JVM's own threads malloc and free in the same arena (before, and reusing freed
    # chunks after): allow 1 % of the freed bytes plus 256 KiB either way.
    slack = acct["freed"] // 100 + (256 << 10)
    assert abs(free - acct["freed"]) <= slack, (free, acct)
    assert in_use >= acct["live"] - slack
    assert home.bytes_by_state["largebin"] + home.bytes_by_state["unsorted"] > acct["freed"] // 2


def test_main_arena_of_a_static_binary(tmp_path):
    """No libc.so mapped: main_arena is in the executable's data; the arena ring
    (a thread's arena's ``next``) leads to the same address."""
    from offheap import main_arena as MA
    from offheap.proc import MemReader
    exe = tmp_path / "heapwork_static"
    res = compile_c(HERE / "heapwork.c", exe, "-static")
    if res.returncode != 0:
        pytest.skip(f"no static glibc to link with: {res.stderr.strip()[:200]}")
    with running(exe, "mix", "thread", "500") as (pid, acct):
        found = MA.read_main_arena(pid)
        with MemReader(pid) as mem:
            ring = MA._from_ring(mem, read_maps(pid))
    assert found is not None and ring is not None
    assert (found.found_by, ring.found_by) == ("libc scan", "arena ring")
    assert found.address == ring.address and found.data == ring.data
    # Saved with a capture, it comes back as walk_heap arguments for [heap] only.
    assert MA.capture_main_arena(pid, tmp_path) is None  # the process is gone: no file, no error
    MA.save_main_arena(found, tmp_path)
    assert (tmp_path / MA.MAIN_ARENA_FILE).stat().st_mode & 0o777 == 0o600
    assert MA.walk_args(tmp_path, "main") == {"arena_state": found.data, "arena_address": found.address}
    assert MA.walk_args(tmp_path, "arena") == {}
