"""vote_strings alone on an arena-like dump: the built-in signatures and five user ones.

    python benchmarks/bench_vote.py [--dump PATH] [--repeat N]

Finds the dump's strings once (``find_strings``, as ``offheap scan`` does), then
times one ``vote_strings`` over all of them, best of N, with the AVX-512 voter (when
the CPU has it) and with ``_set_simd(False)`` (the automaton's portable voter),
beside the join it replaces (every match by ``ac_scan``, joined by ``string_types``),
and checks that all three give the same classes and pattern counts, and an empty
carry. The dump defaults to the
shared 64 MiB arena-like dump. Absolute figures swing on a shared machine: read the
ratios.
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
from offheap.signatures import PayloadType, Signatures, builtin  # noqa: E402

FIVE = ["unread_count", "presence", "message_new", "typing", "read_receipt"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dump_options(ap, repeat=7)
    args = ap.parse_args(argv)
    data = read_dump(args)
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
        results = {}

        def vote(key="vote"):
            counts = np.zeros(npat, np.int64)
            carry = np.zeros(npat + 3, np.int64)
            results[key] = (_scan.vote_strings(data, 0, len(data), offs, lens, t.trans, t.classes,
                                                  t.ncls, t.out_ptr, t.out_ids, pat_type, priority,
                                                  counts, carry), counts, carry)

        def join():
            counts = np.zeros(npat, np.int64)
            m_off, m_pid, _ = _scan.ac_scan(data, 0, len(data), *t.kernel_args(), 0, 0)
            cls, _ = _scan.string_types(offs, lens, m_off, m_pid, t.pat_len.astype(np.int64), pat_type,
                                        priority, counts)
            results["join"] = (cls, counts)
        plan = _scan._vote_plan(t.trans, t.classes, t.ncls, t.out_ptr, t.out_ids, pat_type, priority)
        t_vote, _ = best_of(args.repeat, vote)
        previous = _scan._set_simd(False)
        try:
            t_port, _ = best_of(args.repeat, lambda: vote("portable"))
        finally:
            _scan._set_simd(previous)
        t_join, _ = best_of(args.repeat, join)
        (vc, vn, carry), (pc, pn, pcarry), (jc, jn) = results["vote"], results["portable"], results["join"]
        same = (np.array_equal(vc, jc) and np.array_equal(vn, jn) and np.array_equal(pc, jc)
                and np.array_equal(pn, jn) and not carry.any() and not pcarry.any())
        status |= not same
        path = "avx512" if plan else "portable"
        print(f"{name:8} {npat:3} patterns {int(vn.sum()):9} matches  "
              f"vote_strings ({path}) {t_vote * 1e3:6.1f} ms ({text / t_vote / 1e9:5.2f} GB/s of text)  "
              f"SIMD off {t_port * 1e3:6.1f} ms  ac_scan + string_types {t_join * 1e3:6.1f} ms  "
              f"{t_port / t_vote:4.1f}x / {t_join / t_vote:4.1f}x  {'same' if same else 'DIFFERENT'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
