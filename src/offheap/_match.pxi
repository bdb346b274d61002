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
#                  Checked but not used by this kernel (see "Lanes" below); kept in the
#                  table layout for other consumers.
#
# The state is the row offset of the current DFA state (0 = root); the caller
# carries it from one window to the next, so matches spanning windows are found.
# Offsets reported are absolute START offsets: base + end_index + 1 - len.

cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

from libc.string cimport memcpy, memmove

import numpy as _np

cdef extern from *:
    """
    #include <stdint.h>

    /* Lanes: the range is cut into up to four parts, each run by its own automaton
       ("lane"); stepping four lanes in one loop overlaps their table loads, where a
       single automaton waits for the load of each next state (one dependent load per
       byte). The lanes stage the steps that reach a state with output, (position,
       state), one block at a time; expanding those into (offset, pattern id) runs
       after the block, so the stepping loop has one branch per byte, taken only
       where a match ends.
       Four lanes stepping every byte beat one automaton that skips the positions
       where the start-pair filter says no match can start (this kernel's earlier form):
       on arena dumps 1.5-9 % of the positions pass that filter, and each pass costs
       a mispredicted branch. */
    #define OFFHEAP_AC_BLOCK 4096
    typedef struct {
        Py_ssize_t i, end;   /* next byte to read, end of the lane's part */
        Py_ssize_t n, cap;   /* outputs written, output capacity */
        Py_ssize_t i0;       /* buffer index of the current block's first byte */
        int32_t s;           /* state (row offset) */
        uint64_t *off;
        int32_t *ids;
    } offheap_ac_lane;

    typedef struct {
        const int32_t *trans, *classes, *out_ids, *pat_len;
        const int64_t *out_ptr;
        uint64_t base;
        unsigned shift;   /* state = ((row >> shift) * inv) mod 2^32: exact division */
        uint32_t inv;     /* by ncls = odd << shift without a divide instruction */
    } offheap_ac_dfa;

    /* One byte of lane k: a table load that depends on the previous one, and a
       rarely taken branch that stages the step when the new state has output:
       lane << 62 | position in the block << 32 | state row. All lanes stage into one
       array, which keeps the loop's values in registers (12 of them). */
    #define OFFHEAP_AC_STEP(k) {                                              \
        Py_ssize_t t_ = trans[s##k + classes[p##k[j]]];                       \
        if (t_ < 0) {                                                          \
            t_ = ~t_;                                                          \
            *w++ = ((uint64_t)(k) << 62) | ((uint64_t)j << 32) | (uint32_t)t_; \
        }                                                                      \
        s##k = t_;                                                             \
    }

    /* Four lanes over cnt bytes each, in lockstep; returns the steps staged. */
    static __attribute__((noinline)) Py_ssize_t
    offheap_ac_block4(const unsigned char *buf, offheap_ac_lane *L, Py_ssize_t cnt,
                      const int32_t *trans, const int32_t *classes, uint64_t *stage) {
        const unsigned char *p0 = buf + L[0].i, *p1 = buf + L[1].i,
                            *p2 = buf + L[2].i, *p3 = buf + L[3].i;
        /* 64-bit states: the table load sign-extends in the same instruction,
           one cycle less per byte on each lane's dependency chain */
        Py_ssize_t s0 = L[0].s, s1 = L[1].s, s2 = L[2].s, s3 = L[3].s;
        uint64_t *w = stage;
        Py_ssize_t j;
        for (j = 0; j < cnt; j++) {
            OFFHEAP_AC_STEP(0) OFFHEAP_AC_STEP(1) OFFHEAP_AC_STEP(2) OFFHEAP_AC_STEP(3)
        }
        L[0].s = (int32_t)s0; L[1].s = (int32_t)s1; L[2].s = (int32_t)s2; L[3].s = (int32_t)s3;
        return w - stage;
    }

    /* Lane k alone over cnt bytes. */
    static Py_ssize_t offheap_ac_block1(const unsigned char *buf, offheap_ac_lane *L, int k,
                                        Py_ssize_t cnt, const int32_t *trans,
                                        const int32_t *classes, uint64_t *stage) {
        const unsigned char *p0 = buf + L[k].i;
        int32_t s0 = L[k].s, t_;
        uint64_t *w = stage;
        Py_ssize_t j;
        for (j = 0; j < cnt; j++) {
            t_ = trans[s0 + classes[p0[j]]];
            if (t_ < 0) {
                t_ = ~t_;
                *w++ = ((uint64_t)k << 62) | ((uint64_t)j << 32) | (uint32_t)t_;
            }
            s0 = t_;
        }
        L[k].s = s0;
        return w - stage;
    }

    /* Run the next block: the four lanes in lockstep while all four have bytes left,
       else the first unfinished lane alone (the last few bytes, or short ranges).
       Returns the number of steps staged, or -1 when every lane is finished. */
    static Py_ssize_t offheap_ac_block(const unsigned char *buf, offheap_ac_lane *L, int nl,
                                       const int32_t *trans, const int32_t *classes,
                                       uint64_t *stage) {
        Py_ssize_t cnt = OFFHEAP_AC_BLOCK, m;
        int k;
        for (k = 0; k < nl; k++) {
            L[k].i0 = L[k].i;
            if (L[k].end - L[k].i < cnt)
                cnt = L[k].end - L[k].i;
        }
        if (nl == 4 && cnt > 0) {
            m = offheap_ac_block4(buf, L, cnt, trans, classes, stage);
            for (k = 0; k < 4; k++)
                L[k].i += cnt;
            return m;
        }
        for (k = 0; k < nl; k++) {
            if (L[k].i < L[k].end) {
                cnt = L[k].end - L[k].i;
                if (cnt > OFFHEAP_AC_BLOCK)
                    cnt = OFFHEAP_AC_BLOCK;
                m = offheap_ac_block1(buf, L, k, cnt, trans, classes, stage);
                L[k].i += cnt;
                return m;
            }
        }
        return -1;
    }

    /* Expand staged steps stage[*r:m] into (start offset, pattern id) outputs of
       their lanes, in order. Returns -1, or the lane whose output is full (with *r
       at the step not yet expanded: the caller grows that lane and calls again). */
    static int offheap_ac_expand(offheap_ac_lane *L, const uint64_t *stage, Py_ssize_t m,
                                 Py_ssize_t *r_io, const offheap_ac_dfa *D) {
        Py_ssize_t r = *r_io;
        for (; r < m; r++) {
            uint64_t g = stage[r];
            offheap_ac_lane *l = &L[g >> 62];
            uint32_t st = ((uint32_t)g >> D->shift) * D->inv;
            int64_t q = D->out_ptr[st], q1 = D->out_ptr[st + 1];
            uint64_t e = D->base + (uint64_t)l->i0 + 1u + ((g >> 32) & 0x3fffffffu);
            Py_ssize_t n = l->n;
            uint64_t *off = l->off;
            int32_t *ids = l->ids;
            if (n + (q1 - q) > l->cap) {
                *r_io = r;
                return (int)(g >> 62);
            }
            for (; q < q1; q++) {
                int32_t pid = D->out_ids[q];
                off[n] = e - (uint64_t)D->pat_len[pid];
                ids[n] = pid;
                n++;
            }
            l->n = n;
        }
        *r_io = r;
        return -1;
    }

    /* The state after reading buf[i:end) from the root, without output: a lane's
       warm-up over the maxlen - 1 bytes before its part, after which its state equals
       the state of one automaton run from the start (no pattern reaches further back). */
    static int32_t offheap_ac_warm(const unsigned char *buf, Py_ssize_t i, Py_ssize_t end,
                                   const int32_t *trans, const int32_t *classes) {
        int32_t s = 0, t;
        for (; i < end; i++) {
            t = trans[s + classes[buf[i]]];
            s = t < 0 ? ~t : t;
        }
        return s;
    }

    /* 1 if every entry of trans is a row offset (a multiple of ncls below n_states *
       ncls), its sign bit aside; the divisibility test multiplies by the inverse. */
    static int offheap_ac_rows_ok(const int32_t *trans, Py_ssize_t n, uint32_t nstates,
                                  unsigned shift, uint32_t inv) {
        uint32_t bad = 0, low = (1u << shift) - 1u;
        Py_ssize_t k;
        for (k = 0; k < n; k++) {
            int32_t v = trans[k];
            uint32_t r = (uint32_t)(v < 0 ? ~v : v);
            bad |= (r & low) | (uint32_t)(((r >> shift) * inv) >= nstates);
        }
        return bad == 0;
    }
    """
    ctypedef struct offheap_ac_lane:
        Py_ssize_t i, end, n, cap, i0
        int32_t s
        uint64_t* off
        int32_t* ids
    ctypedef struct offheap_ac_dfa:
        const int32_t* trans
        const int32_t* classes
        const int32_t* out_ids
        const int32_t* pat_len
        const int64_t* out_ptr
        uint64_t base
        unsigned shift
        uint32_t inv
    enum: OFFHEAP_AC_BLOCK
    Py_ssize_t offheap_ac_block(const unsigned char* buf, offheap_ac_lane* L, int nl,
                                const int32_t* trans, const int32_t* classes,
                                uint64_t* stage) noexcept nogil
    int offheap_ac_expand(offheap_ac_lane* L, const uint64_t* stage, Py_ssize_t m,
                          Py_ssize_t* r_io, const offheap_ac_dfa* D) noexcept nogil
    int32_t offheap_ac_warm(const unsigned char* buf, Py_ssize_t i, Py_ssize_t end,
                            const int32_t* trans, const int32_t* classes) noexcept nogil
    int offheap_ac_rows_ok(const int32_t* trans, Py_ssize_t n, uint32_t nstates,
                           unsigned shift, uint32_t inv) noexcept nogil


# Each lane gets at least this many bytes (and at least the longest pattern's length,
# so that its warm-up stays inside the range): short ranges run as fewer lanes.
cdef Py_ssize_t _AC_LANE_MIN = 64


def _ac_divisor(int ncls):
    """(shift, inverse) with row // ncls == ((row >> shift) * inverse) mod 2**32 for
    every multiple ``row`` of ncls (exact division by multiplication)."""
    shift = (ncls & -ncls).bit_length() - 1
    return shift, pow(ncls >> shift, -1, 1 << 32)


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

    The range is cut into up to four parts run as interleaved automata ("lanes");
    each lane after the first starts ``maxlen - 1`` bytes early from the root, which
    gives it the exact state at its first byte, so the output is the same as one
    automaton's, in the same order.

    >>> t = build_tables([b"he", b"she"])                    # doctest: +SKIP
    >>> ac_scan(b"ushers", 0, 6, *t.kernel_args())           # doctest: +SKIP
    (array([1, 2], dtype=uint64), array([1, 0], dtype=int32), 0)
    """
    cdef Py_ssize_t nbytes = buf.shape[0]
    if begin < 0 or end < begin or end > nbytes:
        raise ValueError(f"bad range [{begin}, {end}) for a buffer of {nbytes} bytes")
    shift, inv = _ac_divisor(ncls) if ncls > 0 else (0, 1)
    _ac_check_tables(trans, classes, ncls, out_ptr, out_ids, pat_len, start_filter, state)
    # Memoryviews of zero-length buffers have no valid data pointer; nothing to do.
    if end == begin:
        return _np.empty(0, dtype=_np.uint64), _np.empty(0, dtype=_np.int32), state

    cdef offheap_ac_dfa dfa
    dfa.trans = &trans[0]
    dfa.classes = &classes[0]
    dfa.out_ptr = &out_ptr[0]
    dfa.out_ids = &out_ids[0] if out_ids.shape[0] else NULL
    dfa.pat_len = &pat_len[0] if pat_len.shape[0] else NULL
    dfa.base = base
    dfa.shift = shift
    dfa.inv = inv
    cdef const unsigned char* bp = &buf[0]

    cdef Py_ssize_t warm = int(_np.asarray(pat_len).max()) - 1 if pat_len.shape[0] else 0
    cdef Py_ssize_t length = end - begin
    cdef Py_ssize_t nl = min(4, length // max(_AC_LANE_MIN, warm + 1))
    nl = max(nl, 1)
    cdef Py_ssize_t most = out_ptr[out_ptr.shape[0] - 1]  # outputs of one step, at most
    cdef offheap_ac_lane lanes[4]
    cdef Py_ssize_t j, a, b, cap
    stage = _np.empty(4 * OFFHEAP_AC_BLOCK, dtype=_np.uint64)
    cdef uint64_t* sp = <uint64_t*>_np_data(stage)
    cdef Py_ssize_t m, r
    cdef int full
    # All lanes write into one pair of arrays, lane j from starts[j]; at the end the
    # parts are moved together in place (a lane that outgrows its part moves to
    # arrays of its own, and the parts are then concatenated).
    cdef Py_ssize_t starts[4]
    cdef Py_ssize_t total = 0, n
    for j in range(nl):
        a = begin + length * j // nl
        b = begin + length * (j + 1) // nl
        lanes[j].i = a
        lanes[j].end = b
        lanes[j].n = 0
        lanes[j].i0 = a
        lanes[j].s = 0
        # arena dumps hold up to one match per ~17 bytes with the built-in signatures;
        # np.empty only reserves memory, pages are touched as outputs are written
        cap = 16 + (b - a) // 12
        lanes[j].cap = cap
        starts[j] = total
        total += cap
    off_all = _np.empty(total, dtype=_np.uint64)
    ids_all = _np.empty(total, dtype=_np.int32)
    cdef uint64_t* op_all = <uint64_t*>_np_data(off_all)
    cdef int32_t* ip_all = <int32_t*>_np_data(ids_all)
    own = [None] * nl
    for j in range(nl):
        lanes[j].off = op_all + starts[j]
        lanes[j].ids = ip_all + starts[j]
    lanes[0].s = state
    with nogil:
        for j in range(1, nl):
            lanes[j].s = offheap_ac_warm(bp, lanes[j].i - warm, lanes[j].i, dfa.trans, dfa.classes)
        while True:
            m = offheap_ac_block(bp, lanes, <int>nl, dfa.trans, dfa.classes, sp)
            if m < 0:
                break
            r = 0
            while True:
                full = offheap_ac_expand(lanes, sp, m, &r, &dfa)
                if full < 0:
                    break
                # Output full: give the lane bigger arrays (with the GIL), go on.
                with gil:
                    n = lanes[full].n
                    cap = lanes[full].cap * 2 + most
                    o = _np.empty(cap, dtype=_np.uint64)
                    d = _np.empty(cap, dtype=_np.int32)
                    memcpy(_np_data(o), lanes[full].off, n * sizeof(uint64_t))
                    memcpy(_np_data(d), lanes[full].ids, n * sizeof(int32_t))
                    own[full] = (o, d)
                    lanes[full].cap = cap
                    lanes[full].off = <uint64_t*>_np_data(o)
                    lanes[full].ids = <int32_t*>_np_data(d)
    if all(x is None for x in own):
        n = 0
        for j in range(nl):
            if starts[j] != n:
                memmove(op_all + n, lanes[j].off, lanes[j].n * sizeof(uint64_t))
                memmove(ip_all + n, lanes[j].ids, lanes[j].n * sizeof(int32_t))
            n += lanes[j].n
        offsets, ids = off_all[:n], ids_all[:n]
        if n * 4 < total:
            # few matches: do not keep the whole reservation alive behind a view
            offsets, ids = offsets.copy(), ids.copy()
    else:
        offsets = _np.concatenate([
            own[j][0][:lanes[j].n] if own[j] is not None else off_all[starts[j]:starts[j] + lanes[j].n]
            for j in range(nl)])
        ids = _np.concatenate([
            own[j][1][:lanes[j].n] if own[j] is not None else ids_all[starts[j]:starts[j] + lanes[j].n]
            for j in range(nl)])
    return offsets, ids, int(lanes[nl - 1].s)


cdef void* _np_data(arr) except NULL:
    # Data pointer of a contiguous numpy array (through the buffer protocol), for the
    # lanes' C structs; an empty array still yields a valid pointer.
    cdef unsigned char[::1] v = arr.view(_np.uint8)
    if v.shape[0] == 0:
        return <void*>_EMPTY
    return <void*>&v[0]


cdef uint64_t _EMPTY[1]


@cython.boundscheck(False)
@cython.wraparound(False)
def _ac_check_tables(trans, classes, int ncls, out_ptr, out_ids, pat_len, start_filter, int state):
    # The loop indexes these without bounds checks: refuse tables that would let it
    # read outside them (one pass over trans, small next to a window's scan).
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
    py_shift, py_inv = _ac_divisor(ncls)
    cdef const int32_t[::1] tv = trans
    cdef uint32_t c_nstates = nstates, c_inv = py_inv
    cdef unsigned c_shift = py_shift
    cdef bint ok
    with nogil:
        ok = offheap_ac_rows_ok(&tv[0], tv.shape[0], c_nstates, c_shift, c_inv)
    if not ok:
        raise ValueError("trans entries must be row offsets inside the table")
    if state < 0 or state >= t.shape[0] or state % ncls:
        raise ValueError(f"bad automaton state {state}")
