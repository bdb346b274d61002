# Multi-pattern matching kernel: a dense Aho-Corasick DFA run over a byte buffer.
#
# Included by _scan.pyx; the pure-Python twin is _match_py.py (same function, same
# results). The tables come from offheap.matching.build_tables (pyahocorasick's trie
# and failure links turned into a DFA); their layout:
#
#   classes[256]   int32: byte -> column ("byte class"; bytes no pattern uses share
#                  column 0, so the table has one column per distinct pattern byte + 1).
#   trans[S*C]     int32, row-major, C = ncls columns. Entries are *row offsets*
#                  (state * C), so one step is ``s = trans[s + classes[b]]`` with no
#                  multiply. A negative entry ``~off`` means "go to row off, and that
#                  state reports matches" (the sign bit is the output flag).
#   out_ptr[S+1]   int64 CSR index into out_ids: the patterns ending in each state,
#                  its own pattern(s) first, then those reached by dictionary suffix
#                  links (longest first).
#   pat_len[P]     int32 pattern lengths, to turn end positions into start offsets.
#   start_filter   uint8[8192], a 65536-bit set of the byte pairs (b0 | b1 << 8) that
#                  can start a match (every pair whose first byte is a 1-byte pattern).
#
# The state is the row offset of the current DFA state (0 = root); the caller
# carries it from one window to the next, so matches spanning windows are found.
# Offsets reported are absolute START offsets: base + end_index + 1 - len.

cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t

import numpy as _np

cdef extern from *:
    """
    #include <string.h>
    #include <stdint.h>
    /* First index j >= i (j < end) at which a match may start: the pair
       (buf[j], buf[j+1]) is in the start filter, or j == end - 1 (no pair to test).
       Eight positions per round from one 64-bit load, the tests combined without
       branches; the positions are independent, unlike DFA steps, so this runs several
       times faster than stepping the automaton. Called with i < end. */
    #define OFFHEAP_AC_BIT(f, v) (((unsigned)(f)[(v) >> 3] >> ((v) & 7)) & 1u)
    static inline Py_ssize_t offheap_ac_skip(const unsigned char *buf, Py_ssize_t i,
                                             Py_ssize_t end, const uint8_t *f) {
        while (i + 9 <= end) {
            uint64_t w;
            unsigned m;
            memcpy(&w, buf + i, 8);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            w = __builtin_bswap64(w);
    #endif
            m = OFFHEAP_AC_BIT(f, w & 0xffff)
              | OFFHEAP_AC_BIT(f, (w >> 8) & 0xffff) << 1
              | OFFHEAP_AC_BIT(f, (w >> 16) & 0xffff) << 2
              | OFFHEAP_AC_BIT(f, (w >> 24) & 0xffff) << 3
              | OFFHEAP_AC_BIT(f, (w >> 32) & 0xffff) << 4
              | OFFHEAP_AC_BIT(f, (w >> 40) & 0xffff) << 5
              | OFFHEAP_AC_BIT(f, (w >> 48) & 0xffff) << 6
              | OFFHEAP_AC_BIT(f, (unsigned)(w >> 56) | ((unsigned)buf[i + 8] << 8)) << 7;
            if (m)
                return i + __builtin_ctz(m);
            i += 8;
        }
        while (i + 1 < end) {
            unsigned v = buf[i] | ((unsigned)buf[i + 1] << 8);
            if (OFFHEAP_AC_BIT(f, v))
                return i;
            i++;
        }
        return i;
    }
    """
    Py_ssize_t offheap_ac_skip(const unsigned char* buf, Py_ssize_t i, Py_ssize_t end,
                               const uint8_t* f) noexcept nogil


@cython.boundscheck(False)
@cython.wraparound(False)
@cython.cdivision(True)
cdef Py_ssize_t _ac_run(const unsigned char* buf, Py_ssize_t i, Py_ssize_t end,
                        const int32_t* trans, const int32_t* classes, int32_t ncls,
                        const int64_t* out_ptr, const int32_t* out_ids,
                        const int32_t* pat_len, const uint8_t* start_filter,
                        int32_t* state_io, uint64_t base,
                        uint64_t* offsets, int32_t* ids,
                        Py_ssize_t* n_io, Py_ssize_t cap) noexcept nogil:
    """Run from buf[i] to buf[end-1]; stop early (returning the index not yet
    consumed) when the next match would not fit in the ``cap`` output slots."""
    cdef int32_t s = state_io[0]
    cdef int32_t t, st, pid
    cdef Py_ssize_t n = n_io[0]
    cdef int64_t k, k0, k1
    while i < end:
        if s == 0:
            # At the root no match is in progress, so position i can be skipped
            # unless a pattern starts there (see offheap_ac_skip).
            i = offheap_ac_skip(buf, i, end, start_filter)
        t = trans[s + classes[buf[i]]]
        if t < 0:
            st = (~t) // ncls
            k0 = out_ptr[st]
            k1 = out_ptr[st + 1]
            if n + (k1 - k0) > cap:
                break
            k = k0
            while k < k1:
                pid = out_ids[k]
                offsets[n] = base + <uint64_t>(i + 1) - <uint64_t>pat_len[pid]
                ids[n] = pid
                n += 1
                k += 1
            s = ~t
        else:
            s = t
        i += 1
    state_io[0] = s
    n_io[0] = n
    return i


@cython.boundscheck(False)
@cython.wraparound(False)
def ac_scan(const unsigned char[::1] buf, Py_ssize_t begin, Py_ssize_t end,
            const int32_t[::1] trans, const int32_t[::1] classes, int ncls,
            const int64_t[::1] out_ptr, const int32_t[::1] out_ids,
            const int32_t[::1] pat_len, const uint8_t[::1] start_filter,
            int state=0, unsigned long long base=0):
    """All pattern occurrences ending in ``buf[begin:end]``.

    Returns ``(offsets, pattern_ids, state)``: ``offsets`` (uint64) are absolute
    start offsets ``base + end_index + 1 - len(pattern)`` (a match that began in an
    earlier window starts before ``base + begin``), in order of end position, and at
    one end position longest pattern first; ``state`` is to be passed to the call
    for the next window. Build the tables with ``offheap.matching.build_tables``.

    >>> t = build_tables([b"he", b"she"])                    # doctest: +SKIP
    >>> ac_scan(b"ushers", 0, 6, *t.kernel_args())           # doctest: +SKIP
    (array([1, 2], dtype=uint64), array([1, 0], dtype=int32), 0)
    """
    cdef Py_ssize_t nbytes = buf.shape[0]
    if begin < 0 or end < begin or end > nbytes:
        raise ValueError(f"bad range [{begin}, {end}) for a buffer of {nbytes} bytes")
    _ac_check_tables(trans, classes, ncls, out_ptr, out_ids, pat_len, start_filter, state)

    cdef Py_ssize_t cap = 4096
    cdef Py_ssize_t n = 0
    cdef Py_ssize_t i = begin
    cdef int32_t st = state
    offsets = _np.empty(cap, dtype=_np.uint64)
    ids = _np.empty(cap, dtype=_np.int32)
    cdef uint64_t[::1] offv = offsets
    cdef int32_t[::1] idv = ids
    # Memoryviews of zero-length buffers have no valid data pointer; nothing to do.
    if end == begin:
        return offsets[:0], ids[:0], state
    cdef const unsigned char* bp = &buf[0]
    cdef const int32_t* tp = &trans[0]
    cdef const int32_t* cp = &classes[0]
    cdef const int64_t* op = &out_ptr[0]
    cdef const int32_t* oip = &out_ids[0] if out_ids.shape[0] else NULL
    cdef const int32_t* lp = &pat_len[0] if pat_len.shape[0] else NULL
    cdef const uint8_t* fp = &start_filter[0]
    while True:
        with nogil:
            i = _ac_run(bp, i, end, tp, cp, ncls, op, oip, lp, fp, &st, base,
                        &offv[0], &idv[0], &n, cap)
        if i >= end:
            break
        # Output full: grow (with the GIL) and resume at the byte not yet consumed.
        cap = cap * 2 + (out_ptr[out_ptr.shape[0] - 1] if out_ptr.shape[0] else 0)
        offsets = _np.resize(offsets, cap)
        ids = _np.resize(ids, cap)
        offv = offsets
        idv = ids
    return offsets[:n], ids[:n], int(st)


def _ac_check_tables(trans, classes, int ncls, out_ptr, out_ids, pat_len, start_filter, int state):
    # The loop indexes these without bounds checks: refuse tables that would let it
    # read outside them (O(table) numpy work, small next to a window's scan).
    t = _np.asarray(trans)
    c = _np.asarray(classes)
    op = _np.asarray(out_ptr)
    oi = _np.asarray(out_ids)
    pl = _np.asarray(pat_len)
    if ncls <= 0 or t.shape[0] == 0 or t.shape[0] % ncls:
        raise ValueError("trans must hold n_states * ncls entries")
    nstates = t.shape[0] // ncls
    if c.shape[0] != 256 or c.min() < 0 or c.max() >= ncls:
        raise ValueError("classes must map all 256 bytes to columns < ncls")
    if _np.asarray(start_filter).shape[0] != 8192:
        raise ValueError("start_filter must hold 65536 bits (8192 bytes)")
    if op.shape[0] != nstates + 1 or op[0] != 0 or op[-1] != oi.shape[0] or (op.shape[0] > 1 and _np.any(op[1:] < op[:-1])):
        raise ValueError("out_ptr must be a CSR index of n_states + 1 entries over out_ids")
    if oi.shape[0] and (oi.min() < 0 or oi.max() >= pl.shape[0]):
        raise ValueError("out_ids must index pat_len")
    rows = _np.where(t < 0, ~t, t)
    if rows.min() < 0 or rows.max() >= t.shape[0] or _np.any(rows % ncls):
        raise ValueError("trans entries must be row offsets inside the table")
    if state < 0 or state >= t.shape[0] or state % ncls:
        raise ValueError(f"bad automaton state {state}")
