"""Pure-Python twin of the matching kernel in ``_match.pxi`` (same function, same results).

It walks the same dense DFA as one automaton, one byte at a time, where the compiled
kernel cuts the range into interleaved "lanes" that each warm up on the bytes before
their part, or (for patterns that only a few rare bytes start) jumps over the
positions where no match can start; the test suite checking the two against each
other (same matches, same order, same carried state) thus also checks the lanes'
warm-up and merge and the skip's resumption. See ``_match.pxi`` for the table layout.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ac_scan"]


def ac_scan(buf, begin, end, trans, classes, ncls, out_ptr, out_ids, pat_len, start_filter,
            state=0, base=0):
    """All pattern occurrences ending in ``buf[begin:end]``.

    Returns ``(offsets, pattern_ids, state)``: uint64 absolute start offsets
    (``base + end_index + 1 - len``) in order of end position (longest pattern first
    at one position), int32 pattern ids, and the state to carry into the next window.
    """
    mv = memoryview(buf)
    if mv.ndim != 1 or mv.itemsize != 1:
        mv = mv.cast("B")
    nbytes = mv.nbytes
    if begin < 0 or end < begin or end > nbytes:
        raise ValueError(f"bad range [{begin}, {end}) for a buffer of {nbytes} bytes")
    _check_tables(trans, classes, ncls, out_ptr, out_ids, pat_len, start_filter, state)

    tr = np.asarray(trans).tolist()
    cl = np.asarray(classes).tolist()
    optr = np.asarray(out_ptr).tolist()
    oids = np.asarray(out_ids).tolist()
    plen = np.asarray(pat_len).tolist()
    offsets: list[int] = []
    ids: list[int] = []
    s = int(state)
    data = mv[begin:end].tobytes()
    pos = base + begin + 1  # absolute end offset + 1 of the byte being consumed
    for b in data:
        t = tr[s + cl[b]]
        if t < 0:
            s = ~t
            st = s // ncls
            for k in range(optr[st], optr[st + 1]):
                pid = oids[k]
                offsets.append(pos - plen[pid])
                ids.append(pid)
        else:
            s = t
        pos += 1
    return np.array(offsets, dtype=np.uint64), np.array(ids, dtype=np.int32), s


def _check_tables(trans, classes, ncls, out_ptr, out_ids, pat_len, start_filter, state):
    # Same checks as the compiled kernel, so both refuse the same bad tables.
    t = np.asarray(trans)
    c = np.asarray(classes)
    op = np.asarray(out_ptr)
    oi = np.asarray(out_ids)
    pl = np.asarray(pat_len)
    if t.dtype != np.int32 or c.dtype != np.int32 or op.dtype != np.int64 \
            or oi.dtype != np.int32 or pl.dtype != np.int32 \
            or np.asarray(start_filter).dtype != np.uint8:
        raise ValueError("Buffer dtype mismatch: tables must be int32/int64/uint8 as built")
    if ncls <= 0 or t.shape[0] == 0 or t.shape[0] % ncls:
        raise ValueError("trans must hold n_states * ncls entries")
    if c.shape[0] != 256 or c.min() < 0 or c.max() >= ncls:
        raise ValueError("classes must map all 256 bytes to columns < ncls")
    if np.asarray(start_filter).shape[0] != 8192:
        raise ValueError("start_filter must hold 65536 bits (8192 bytes)")
    nstates = t.shape[0] // ncls
    if op.shape[0] != nstates + 1 or op[0] != 0 or op[-1] != oi.shape[0] \
            or (op.shape[0] > 1 and np.any(op[1:] < op[:-1])):
        raise ValueError("out_ptr must be a CSR index of n_states + 1 entries over out_ids")
    if oi.shape[0] and (oi.min() < 0 or oi.max() >= pl.shape[0]):
        raise ValueError("out_ids must index pat_len")
    rows = np.where(t < 0, ~t, t)
    if rows.min() < 0 or rows.max() >= t.shape[0] or np.any(rows % ncls):
        raise ValueError("trans entries must be row offsets inside the table")
    if state < 0 or state >= t.shape[0] or state % ncls:
        raise ValueError(f"bad automaton state {state}")
