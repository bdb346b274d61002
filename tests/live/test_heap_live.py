"""walk_heap against real glibc heaps of C workloads built at test time (heapwork.c).

Each workload allocates in a new thread (a non-main arena heap) or in the main thread
(``[heap]``), prints its own accounting in chunk bytes and sleeps; the test reads the
heap through /proc/PID/mem (read-only, os.pread), walks it and compares the totals. The
margins are what glibc itself allocates there: the thread's tcache_perthread_struct
(0x290), and in ``[heap]`` the main thread's one plus libc's start-up allocations.
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
from offheap.proc import parse_maps

pytestmark = pytest.mark.single_impl

HERE = Path(__file__).resolve().parent
HEAP_MAX = 64 << 20
ARENA_SLACK = 4096           # the thread's tcache struct and nothing else of glibc's
MAIN_SLACK = 64 << 10        # [heap]: libc/ld.so start-up allocations, the main tcache
_GLIBC = os.confstr("CS_GNU_LIBC_VERSION") or "glibc 0.0"
GLIBC = tuple(int(x) for x in _GLIBC.split()[-1].split(".")[:2])


@pytest.fixture(scope="module")
def heapwork(tmp_path_factory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: cannot build heapwork.c")
    out = tmp_path_factory.mktemp("heapwork") / "heapwork"
    res = subprocess.run([gcc, "-O1", "-Wall", "-pthread", "-o", str(out), str(HERE / "heapwork.c")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return out


@contextlib.contextmanager
def running(binary: Path, *args: str):
    """Start the workload, yield (pid, its accounting dict); always SIGKILL it by PID."""
    proc = subprocess.Popen([str(binary), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        line = b""
        deadline = time.monotonic() + 20
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
