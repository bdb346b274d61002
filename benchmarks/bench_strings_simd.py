"""find_strings: the AVX-512 path against the portable one, in one run on one dump.

    python benchmarks/bench_strings_simd.py [--dump PATH] [--repeat N]

Reads the dump (default: the 64 MiB arena-like dump bench_scan.py makes,
/tmp/offheap-bench/arena-64M-seed0-v1.bin) into memory and times
``find_strings(data, 0, n, True, min_len, "s", False, 0, state[, zeros])`` over all of
it, best of N, for min_len 8 with zero counting (as attribute calls it), min_len 8
without, and min_len 4, with ``_scan._set_simd(True)`` and ``(False)`` interleaved.
Prints GB/s (10^9 bytes/s) and the ratio; exit status 1 if the two paths disagree.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

try:
    from offheap import _scan
except ImportError:   # running from a checkout without `pip install`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from offheap import _scan

CASES = [(8, True), (8, False), (4, False)]


def run(data: bytes, min_len: int, zeros: bool, simd: bool):
    previous = _scan._set_simd(simd)
    try:
        state = np.zeros(4, dtype=np.uint64)
        zc = np.zeros(1, dtype=np.uint64) if zeros else None
        t = time.perf_counter()
        offs, lens = _scan.find_strings(data, 0, len(data), True, min_len, "s", False, 0, state, zc)
        return time.perf_counter() - t, (offs.tolist(), lens.tolist(), state.tolist(),
                                         None if zc is None else int(zc[0]))
    finally:
        _scan._set_simd(previous)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dump", type=Path, default=None, help="default: the shared 64 MiB arena-like dump")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_match import default_dump
    args.dump = args.dump or default_dump()
    data = args.dump.read_bytes()
    if _scan._simd_level() != "avx512":
        print("no AVX-512 path on this CPU (or OFFHEAP_NO_SIMD=1): nothing to compare")
        return 0
    best: dict[tuple[int, bool, bool], float] = {}
    same = True
    for _ in range(args.repeat):
        for min_len, zeros in CASES:
            results = []
            for simd in (True, False):
                t, res = run(data, min_len, zeros, simd)
                key = (min_len, zeros, simd)
                best[key] = min(best.get(key, t), t)
                results.append(res)
            same &= results[0] == results[1]
    print(f"{args.dump}: {len(data)} bytes, best of {args.repeat}")
    print(f"{'min_len':>7} {'zeros':>5} {'avx512 GB/s':>12} {'portable GB/s':>14} {'ratio':>6}")
    for min_len, zeros in CASES:
        fast = len(data) / best[min_len, zeros, True] / 1e9
        slow = len(data) / best[min_len, zeros, False] / 1e9
        print(f"{min_len:>7} {str(zeros):>5} {fast:>12.2f} {slow:>14.2f} {fast / slow:>6.2f}")
    print("results identical" if same else "RESULTS DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
