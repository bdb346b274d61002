"""vote_strings alone on an arena-like dump: the built-in signatures and five user ones.

    python benchmarks/bench_vote.py [--dump PATH] [--repeat N]

Finds the dump's strings once (``find_strings``, as ``offheap scan`` does), then
times one ``vote_strings`` over all of them, best of N, with the SIMD path and with
the portable one (``_set_simd(False)``), and checks that both give the classes and
pattern counts of the join (every match by ``ac_scan``, joined by ``string_types``)
and an empty carry. The dump defaults to /tmp/offheap-bench/arena-64M-seed0-v1.bin
(``bench_scan.py --dumps 1`` writes it). Absolute figures swing on a shared machine:
read the ratios.
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

from bench_match import best_of, default_dump  # noqa: E402
from offheap import _scan  # noqa: E402
from offheap.signatures import PayloadType, Signatures, builtin  # noqa: E402

FIVE = ["unread_count", "presence", "message_new", "typing", "read_receipt"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dump", type=Path, default=None, help="default: the shared 64 MiB arena-like dump")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    args.dump = args.dump or default_dump()
    data = args.dump.read_bytes()
    state = np.zeros(4, np.uint64)
    offs, lens = _scan.find_strings(data, 0, len(data), True, 8, "s", False, 0, state)
    text = int(lens.sum())
    print(f"{args.dump}: {len(data) >> 20} MiB, {len(offs)} strings, {text >> 20} MiB of text, "
          f"CPU path {_scan._simd_level()}")
    sets = [("builtin", builtin()),
            ("five", Signatures(tuple(PayloadType(t, [f'"{t}"']) for t in FIVE)))]
    status = 0
    for name, sigs in sets:
        pset = sigs.pattern_set()
        t = pset.tables
        pat_type = sigs.pattern_type.astype(np.int64)
        priority = np.array([ty.priority for ty in sigs.types], np.int64)
        npat = len(pat_type)
        times, results = {}, {}
        for simd in (True, False):
            previous = _scan._set_simd(simd)
            try:
                def run():
                    counts = np.zeros(npat, np.int64)
                    carry = np.zeros(npat + 3, np.int64)
                    cls = _scan.vote_strings(data, 0, len(data), offs, lens, t.trans, t.classes,
                                             t.ncls, t.out_ptr, t.out_ids, pat_type, priority,
                                             counts, carry)
                    results[simd] = (cls, counts, carry)
                times[simd] = best_of(args.repeat, run)[0]
            finally:
                _scan._set_simd(previous)
        a, b = results[True], results[False]
        m_off, m_pid, _ = _scan.ac_scan(data, 0, len(data), *t.kernel_args(), 0, 0)
        jc = np.zeros(npat, np.int64)
        jcls, _ = _scan.string_types(offs, lens, m_off, m_pid, t.pat_len.astype(np.int64), pat_type,
                                     priority, jc)
        same = all(np.array_equal(r[0], jcls) and np.array_equal(r[1], jc) and not r[2].any()
                   for r in (a, b))
        status |= not same
        print(f"{name:8} {npat:3} patterns {int(a[1].sum()):9} matches  "
              f"simd {times[True] * 1e3:6.1f} ms ({text / times[True] / 1e9:5.2f} GB/s of text)  "
              f"portable {times[False] * 1e3:6.1f} ms ({text / times[False] / 1e9:5.2f} GB/s)  "
              f"{'same' if same else 'DIFFERENT'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
