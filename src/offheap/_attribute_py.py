"""Pure-Python twin of ``_attribute.pxi``: the same rule, stated with numpy."""

from __future__ import annotations

import numpy as np

__all__ = ["string_types", "vote_strings", "tally_classes", "copy_groups"]


def string_types(str_off, str_len, m_off, m_pid, pat_len, pat_type, priority, pat_counts=None):
    """See ``offheap._scan.string_types``."""
    str_off, str_len = np.asarray(str_off, np.uint64), np.asarray(str_len, np.uint64)
    m_off, m_pid = np.asarray(m_off, np.uint64), np.asarray(m_pid, np.int64)
    pat_len, pat_type = np.asarray(pat_len, np.int64), np.asarray(pat_type, np.int64)
    priority = np.asarray(priority, np.int64)
    if len(str_len) != len(str_off) or len(m_pid) != len(m_off) or len(pat_type) != len(pat_len):
        raise ValueError("array lengths differ")
    if len(pat_type) and (pat_type.min() < 0 or pat_type.max() >= len(priority)):
        raise ValueError("pattern type out of range")
    if pat_counts is not None and len(pat_counts) != len(pat_len):
        raise ValueError("pat_counts must hold one count per pattern")
    if len(m_pid) and (m_pid.min() < 0 or m_pid.max() >= len(pat_len)):
        raise ValueError("pattern id out of range")
    ntypes = len(priority)
    cls = np.full(len(str_off), -1, dtype=np.int64)
    per_type = np.zeros(max(ntypes, 1), dtype=np.int64)
    if not len(str_off) or not len(m_off):
        return cls, per_type
    mend = m_off + pat_len[m_pid].astype(np.uint64)
    # the first string whose end is at or after the match's end
    s = np.searchsorted(str_off + str_len, mend, side="left")
    ok = s < len(str_off)
    ok[ok] &= m_off[ok] >= str_off[s[ok]]
    s, t = s[ok], pat_type[m_pid[ok]]
    if pat_counts is not None:
        pat_counts += np.bincount(m_pid[ok], minlength=len(pat_len)).astype(pat_counts.dtype)
    np.add.at(per_type, t, 1)
    if not len(s):
        return cls, per_type
    keys, votes = np.unique(s * ntypes + t, return_counts=True)
    ks, kt = keys // ntypes, keys % ntypes
    order = np.lexsort((-kt, votes, priority[kt], ks))
    ks, kt = ks[order], kt[order]
    last = np.ones(len(ks), bool)
    last[:-1] = ks[1:] != ks[:-1]
    cls[ks[last]] = kt[last]
    return cls, per_type


def vote_strings(buf, base, end, str_off, str_len, trans, classes, ncls, out_ptr, out_ids,
                 pat_type, priority, pat_counts, carry, open_run=False, open_start=0, weights=None):
    """See ``offheap._scan.vote_strings``: the same votes, one string at a time with
    the twin's automaton."""
    from ._match_py import _check_tables, ac_scan

    mv = memoryview(buf).cast("B") if memoryview(buf).ndim == 1 else memoryview(buf)
    str_off = np.asarray(str_off, np.uint64)
    str_len = np.asarray(str_len, np.uint64)
    pat_type = np.asarray(pat_type, np.int64)
    priority = np.asarray(priority, np.int64)
    npat, ntypes, ns = len(pat_type), len(priority), len(str_off)
    if len(str_len) != ns:
        raise ValueError("array lengths differ")
    if weights is not None:
        weights = np.asarray(weights, np.int64)
        if len(weights) != ns:
            raise ValueError("weights must hold one weight per string")
        if ns and weights.min() < 0:
            raise ValueError("weights must be >= 0")
    if not 0 <= end <= mv.nbytes:
        raise ValueError(f"end {end} is outside the buffer of {mv.nbytes} bytes")
    if len(pat_counts) != npat or len(carry) != npat + 3:
        raise ValueError("pat_counts must hold one count per pattern, carry three more")
    pat_len = np.zeros(npat, np.int32)
    _check_tables(trans, classes, ncls, out_ptr, out_ids, pat_len, np.zeros(8192, np.uint8), 0)
    t = np.asarray(trans)
    has_out = np.diff(np.asarray(out_ptr)) > 0
    if not np.array_equal(t < 0, has_out[np.where(t < 0, ~t, t) // ncls]):
        raise ValueError("trans sign bits disagree with out_ptr")
    if npat and (pat_type.min() < 0 or pat_type.max() >= ntypes):
        raise ValueError("pattern type out of range")
    if carry[0] and not (0 <= carry[2] < len(trans) and carry[2] % ncls == 0):
        raise ValueError("carried automaton state out of range")
    wend = base + end
    continues = ns > 0 and int(str_off[0]) < base
    if continues and not (carry[0] and int(carry[1]) == int(str_off[0])):
        raise ValueError("a string starts before the window but no run was carried for it")
    prev = 0
    for i, (o, n) in enumerate(zip(str_off.tolist(), str_len.tolist())):
        if n == 0 or o + n > wend or (i and (o < prev or o < base)):
            raise ValueError(f"string {i} is empty, unsorted or outside the window")
        prev = o + n
    if open_run and (open_start > wend or (open_start < base and not (
            carry[0] and int(carry[1]) == open_start)) or (ns and open_start < prev)):
        raise ValueError("the open run must start after the strings, inside the window or carried")

    tables = (trans, classes, ncls, out_ptr, out_ids, pat_len, np.zeros(8192, np.uint8))

    def step(begin, stop, state):
        """Pattern counts of the matches ending in buf[begin:stop] from ``state``."""
        _, ids, state = ac_scan(mv, begin, stop, *tables, state, 0)
        return np.bincount(ids, minlength=npat)[:npat].astype(np.int64), state

    def decide(counts):
        votes = np.bincount(pat_type, weights=counts, minlength=ntypes).astype(np.int64)
        present = np.flatnonzero(votes)
        if not len(present):
            return -1
        # highest priority, then most votes, then lowest index
        return int(min(present.tolist(), key=lambda t: (-priority[t], -votes[t], t)))

    cls = np.full(ns, -1, dtype=np.int64)
    for i, (o, n) in enumerate(zip(str_off.tolist(), str_len.tolist())):
        if i == 0 and continues:
            counts, _ = step(0, o + n - base, int(carry[2]))
            counts += np.asarray(carry[3:], np.int64)
        else:
            counts, _ = step(o - base, o + n - base, 0)
        pat_counts += counts * (1 if weights is None else int(weights[i]))
        cls[i] = decide(counts)
    if open_run:
        if open_start < base:
            counts, state = step(0, end, int(carry[2]))
            counts += np.asarray(carry[3:], np.int64)
        else:
            counts, state = step(open_start - base, end, 0)
        carry[0], carry[1], carry[2] = 1, open_start, state
        carry[3:] = counts
    else:
        carry[:] = 0
    return cls


def tally_classes(cls, lengths, other, class_bytes, class_strings):
    """See ``offheap._scan.tally_classes``."""
    cls = np.asarray(cls)
    if len(lengths) != len(cls) or len(class_strings) != len(class_bytes):
        raise ValueError("array lengths differ")
    nc = len(class_bytes)
    if not 0 <= other < nc:
        raise ValueError("other must be a class index")
    cls[cls < 0] = other
    if len(cls) and cls.max() >= nc:
        raise ValueError("class out of range")
    here = np.bincount(cls, minlength=nc).astype(np.int64)
    class_bytes += np.bincount(cls, weights=np.asarray(lengths, np.float64), minlength=nc).astype(np.int64)
    class_strings += here
    return here


def copy_groups(reps):
    """See ``offheap._scan.copy_groups``."""
    reps = np.asarray(reps, np.int64)
    n = len(reps)
    idx = np.arange(n)
    own = reps == idx
    if n and not ((reps <= idx).all() and (reps >= 0).all() and own[reps].all()):
        raise ValueError("reps must name an earlier string that is its own")
    firsts = np.flatnonzero(own).astype(np.int64)
    group = (np.cumsum(own) - 1)[reps].astype(np.int64) if n else np.empty(0, np.int64)
    copies = np.bincount(group, minlength=len(firsts)).astype(np.int64)
    return firsts, copies, group
