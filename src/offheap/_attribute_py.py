"""Pure-Python twin of ``_attribute.pxi``: the same rule, stated with numpy."""

from __future__ import annotations

import numpy as np

__all__ = ["string_types"]


def string_types(str_off, str_len, m_off, m_pid, pat_len, pat_type, priority, pat_counts=None,
                 count_from=0):
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
    if not 0 <= count_from <= len(m_pid):
        raise ValueError("count_from must be within the matches")
    if len(m_pid) and (m_pid.min() < 0 or m_pid.max() >= len(pat_len)):
        raise ValueError("pattern id out of range")
    if pat_counts is not None:
        pat_counts += np.bincount(m_pid[count_from:], minlength=len(pat_len)).astype(pat_counts.dtype)
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
