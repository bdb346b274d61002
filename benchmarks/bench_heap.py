"""Heap walking: walk + attribute a real 64 MiB glibc arena heap, beside the plain strings scan.

    python benchmarks/bench_heap.py [--cache DIR] [--repeat N] [--force]

The dump is taken once from a real process: tests/live/heapwork.c is compiled and run
as ``heapwork fill thread 60`` (a new thread fills one non-main arena heap with ~60 MiB
of JSON copies and frees one in four), the heap's rw-p range is read through
/proc/PID/mem and saved as DIR/heap_arena64.dump (0600 in a 0700 directory; reused
on later runs, replaced only with --force). The workload is killed by PID at once.

Measured in one run, best of N, hot cache, in-process on a bytes object:
- ``walk_heap`` on the Cython kernels and on the pure-Python twin;
- ``attribute`` of every string (``offheap.strings``, min_len 10) to its chunk, with
  per-string type codes taken from the string's first byte (a stand-in for the payload
  matcher's types: the cost is the same searchsorted/bincount work);
- ``offheap.strings`` itself (the plain scan) when available.
Throughput is decimal (1 GB/s = 10^9 bytes/s) over the dump size. Ratios are what to
read: absolute figures swing +-30 % on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402

from offheap import _impl  # noqa: E402
from offheap.heap import attribute, walk_heap  # noqa: E402

HEAP_MAX = 64 << 20


def capture(path: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        sys.exit("bench_heap: gcc is needed to build tests/live/heapwork.c")
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "heapwork"
        subprocess.run([gcc, "-O1", "-pthread", "-o", str(exe), str(REPO / "tests/live/heapwork.c")], check=True)
        proc = subprocess.Popen([str(exe), "fill", "thread", "60"], stdout=subprocess.PIPE)
        try:
            if not select.select([proc.stdout], [], [], 60)[0]:
                sys.exit("bench_heap: heapwork did not report")
            line = os.read(proc.stdout.fileno(), 4096).decode()
            ptr = int(dict(kv.split("=") for kv in line.split())["ptr"], 16)
            base = ptr & ~(HEAP_MAX - 1)
            with open(f"/proc/{proc.pid}/maps", "rb") as f:
                for raw in f:
                    lo, hi = (int(x, 16) for x in raw.split()[0].split(b"-"))
                    if lo == base:
                        break
                else:
                    sys.exit("bench_heap: arena heap not found in maps")
            fd = os.open(f"/proc/{proc.pid}/mem", os.O_RDONLY)
            try:
                data = os.pread(fd, hi - lo, lo)
            finally:
                os.close(fd)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.stdout.close()
    tmp_path = path.with_suffix(".tmp")
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp_path, path)


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="/tmp/offheap-bench")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--force", action="store_true", help="capture a new dump over the cached one")
    args = ap.parse_args()
    cache = Path(args.cache)
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    dump = cache / "heap_arena64.dump"
    if args.force or not dump.exists():
        capture(dump)
    data = dump.read_bytes()
    size = len(data)
    if not _impl.extension_available():
        sys.exit("bench_heap: the Cython extension is not built")

    rows = []
    _impl.select("cython")
    t_walk, walk = best(lambda: walk_heap(data), args.repeat)
    rows.append(("walk_heap (cython)", t_walk))
    _impl.select("python")
    t_twin, _ = best(lambda: walk_heap(data), max(1, args.repeat // 2))
    rows.append(("walk_heap (python twin)", t_twin))
    _impl.select("cython")

    t_scan = None
    try:
        from offheap.scan import strings
    except ImportError:
        strings = None
    if strings is not None:
        t_scan, found = best(lambda: strings(data, min_len=10), args.repeat)
        rows.append(("offheap.strings -n 10 (plain scan)", t_scan))
        offs = found.offsets.astype(np.int64)
        lens = found.lengths.astype(np.int64)
    else:  # no strings scanner yet: one pseudo-string per 256 bytes
        offs = np.arange(0, size, 256, dtype=np.int64)
        lens = np.full(len(offs), 32, np.int64)
    types = np.frombuffer(data, np.uint8)[offs] % 8
    t_attr, attr = best(lambda: attribute(walk.chunks, offs, lens, types, n_types=8), args.repeat)
    rows.append((f"attribute {len(offs):,} strings", t_attr))
    rows.append(("walk + attribute", t_walk + t_attr))

    print(f"dump {dump}: {size / 1e6:.1f} MB, {len(walk.chunks):,} chunks; {walk.verdict}")
    print(f"  in use {walk.in_use_bytes:,} B, free {walk.free_bytes:,} B, top {walk.top_size:,} B; "
          f"attributed {int(attr.string_bytes.sum()):,} string bytes")
    print(f"{'what':<40} {'seconds':>9} {'GB/s':>8}")
    for name, t in rows:
        print(f"{name:<40} {t:>9.4f} {size / t / 1e9:>8.2f}")
    print("ratios (same run):")
    print(f"  walk+attribute vs python twin walk: {t_twin / (t_walk + t_attr):.1f}x faster")
    if t_scan is not None:
        print(f"  walk+attribute time / plain scan time: {(t_walk + t_attr) / t_scan:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
