"""template_hashes alone on one 64 MiB arena-like dump: the AVX-512 path against the
portable one, in the same run (as bench_scan.py's kernel table measures it)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from offheap import _scan

MiB = 1 << 20


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dump", type=Path, default=Path("/tmp/offheap-bench/arena-64M-seed0-v1.bin"),
                    help="made by benchmarks/bench_scan.py --dumps 1 --repeat 1 when missing")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    data = args.dump.read_bytes()
    state = np.zeros(4, np.uint64)
    offs, lens = _scan.find_strings(data, 0, len(data), True, 8, "s", False, 0, state)
    text = int(lens.sum())
    print(f"{args.dump.name}: {len(offs)} strings, {text / MiB:.1f} MiB of text, "
          f"best of {args.repeat}")
    previous = _scan._set_simd(True)
    try:
        results = {}
        for level in (False, True):
            _scan._set_simd(level)
            name = _scan._simd_level()
            h = _scan.template_hashes(data, 0, offs, lens)
            t = best_of(args.repeat, lambda: _scan.template_hashes(data, 0, offs, lens))
            results[name] = (t, h)
            print(f"  template_hashes {name:<9} {t * 1e3:7.2f} ms  {text / t / 1e9:5.2f} GB/s")
    finally:
        _scan._set_simd(previous)
    if "avx512" in results:
        (tp, hp), (ta, ha) = results["portable"], results["avx512"]
        print(f"  speed-up of avx512 over portable: {tp / ta:.2f}x; identical hashes: "
              f"{bool(np.array_equal(hp, ha))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
