"""ac_scan on small pattern sets: the AVX-512 fingerprint search against the portable
paths (root skip or four lanes), in one run on the same arena-like dump.

    python benchmarks/bench_match_small.py [--dump PATH] [--repeat N]

Times one ``ac_scan`` over the whole dump read into memory (bytes), best of N, for
five user signatures, ten (those plus five more keys present in the dump) and the
built-in set; checks that both paths give the same offsets, ids and state. The dump
defaults to /tmp/offheap-bench/arena-64M-seed0-v1.bin (``bench_scan.py --dumps 1``
writes it). Absolute figures swing on a shared machine: read the ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # no spinning BLAS threads beside the scan

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from bench_match import add_dump_options, best_of, read_dump  # noqa: E402
from offheap import _scan  # noqa: E402
from offheap.matching import build_tables  # noqa: E402
from offheap.signatures import builtin  # noqa: E402

FIVE = [b'"unread_count"', b'"presence"', b'"message_new"', b'"typing"', b'"read_receipt"']
TEN = FIVE + [b'"ts"', b'"uid"', b'"from"', b'"to"', b'"event"']


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dump_options(ap, repeat=5)
    args = ap.parse_args(argv)
    data = read_dump(args)
    print(f"{args.dump}: {len(data) >> 20} MiB, CPU path {_scan._simd_level()}")
    sets = [("five", FIVE), ("ten", TEN), ("builtin", list(builtin().pattern_set().patterns))]
    status = 0
    for name, pats in sets:
        t = build_tables(pats)
        path = _scan._ac_path(t.trans, t.classes, t.ncls, t.out_ptr, t.out_ids, t.pat_len)
        times, results = {}, {}
        for simd in (True, False):
            previous = _scan._set_simd(simd)
            try:
                def run():
                    results[simd] = _scan.ac_scan(data, 0, len(data), *t.kernel_args(), 0, 0)
                times[simd] = best_of(args.repeat, run)[0]
            finally:
                _scan._set_simd(previous)
        a, b = results[True], results[False]
        same = np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
        if not same:
            status = 1
        portable = "skip" if _scan._ac_skip_plan(t.trans, t.classes, t.ncls) is not None else "lanes"
        print(f"{name:8} {len(pats):3} patterns {a[0].shape[0]:9} matches  "
              f"{path:5} {times[True] * 1e3:6.1f} ms ({len(data) / times[True] / 1e9:5.2f} GB/s)  "
              f"{portable:5} {times[False] * 1e3:6.1f} ms  ratio {times[False] / times[True]:4.1f}x"
              f"  {'same' if same else 'DIFFERENT'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
