# Printable-string kernels: GNU strings 2.40 semantics at memory speed.
#
# Semantics (binutils/strings.c, print_strings/get_char/unget_part_char): a unit of
# k bytes (k = 1, 2 or 4) is "graphic" if its value is <= 255 and is 0x20-0x7E or TAB,
# plus \n \v \f \r with -w, plus >= 0x80 with -e S. A string is a chain of at least
# min_len graphic units at consecutive unit positions p, p+k, p+2k, ...; a failing unit
# at q restarts the search at q+1. Because a graphic multi-byte unit has zero bytes
# where a neighbour would need a graphic one, the positions strictly between two
# graphic units of a chain are never graphic, so chains never interleave and "restart
# at q+1" is the same as scanning every byte position in order. That lets the kernel
# work on bitmasks: one bit per byte position, 64 positions at a time.
#
# Masks are computed word-at-a-time (SWAR) on 8-byte words: no per-byte branches and
# no table lookups, so the common cases (zero runs, binary, long JSON runs) cost a few
# instructions per 8 bytes. Runs are then found with count-trailing-zeros on the masks.
#
# The kernel is resumable: a 4-word state array carries the run (or chain) that touches
# the end of the range into the next call, so a file is scanned window by window and a
# run crossing a window edge is reported once, whole, when it ends.

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcpy

import numpy as np

cdef extern from "<endian.h>" nogil:
    uint64_t le64toh(uint64_t x)

cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil

# Where SSE2 exists (every x86-64), 16 bytes are classified per compare and gathered
# by movemask; elsewhere the portable SWAR code below does the same job 8 at a time.
cdef extern from *:
    """
    #include <stdint.h>
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #define OFFHEAP_SSE2 1
    /* bit i set iff byte p[i] is graphic: 0x20-0x7E, TAB (or TAB..CR with ws), >= 0x80 with high */
    static inline uint64_t offheap_graphic64(const unsigned char *p, int ws, int high) {
        const __m128i lo = _mm_set1_epi8(0x1F), hi = _mm_set1_epi8(0x7F);
        const __m128i wlo = _mm_set1_epi8(8), whi = _mm_set1_epi8(ws ? 14 : 10);
        const __m128i zero = _mm_setzero_si128();
        uint64_t m = 0;
        for (int i = 0; i < 4; i++) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + 16 * i));
            /* signed compares: bytes >= 0x80 are negative, so they fail both ranges */
            __m128i g = _mm_and_si128(_mm_cmpgt_epi8(x, lo), _mm_cmplt_epi8(x, hi));
            g = _mm_or_si128(g, _mm_and_si128(_mm_cmpgt_epi8(x, wlo), _mm_cmplt_epi8(x, whi)));
            if (high)
                g = _mm_or_si128(g, _mm_cmplt_epi8(x, zero));
            m |= (uint64_t)(uint16_t)_mm_movemask_epi8(g) << (16 * i);
        }
        return m;
    }
    static inline uint64_t offheap_zero64(const unsigned char *p) {
        const __m128i zero = _mm_setzero_si128();
        uint64_t m = 0;
        for (int i = 0; i < 4; i++) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + 16 * i));
            m |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(x, zero)) << (16 * i);
        }
        return m;
    }
    /* number of 0x00 bytes in p[0:64]: per 16 bytes a compare, a subtract (+1 per
       zero byte) and a sum of absolute differences, no popcount instruction needed */
    static inline uint64_t offheap_nzero64(const unsigned char *p) {
        const __m128i zero = _mm_setzero_si128();
        __m128i acc = zero;
        for (int i = 0; i < 4; i++) {
            __m128i x = _mm_loadu_si128((const __m128i *)(p + 16 * i));
            acc = _mm_add_epi64(acc, _mm_sad_epu8(_mm_sub_epi8(zero, _mm_cmpeq_epi8(x, zero)), zero));
        }
        return (uint64_t)_mm_cvtsi128_si64(acc) + (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(acc, acc));
    }
    #else
    #define OFFHEAP_SSE2 0
    static inline uint64_t offheap_graphic64(const unsigned char *p, int ws, int high) { return 0; }
    static inline uint64_t offheap_zero64(const unsigned char *p) { return 0; }
    static inline uint64_t offheap_nzero64(const unsigned char *p) {
        uint64_t c = 0;
        for (int i = 0; i < 64; i++)
            c += p[i] == 0;
        return c;
    }
    #endif
    """
    const int OFFHEAP_SSE2
    uint64_t offheap_graphic64(const unsigned char *p, int ws, int high) noexcept nogil
    uint64_t offheap_zero64(const unsigned char *p) noexcept nogil
    uint64_t offheap_nzero64(const unsigned char *p) noexcept nogil

# AVX-512 (Zen 4, Ice Lake and later): the single-byte scan loop in C. Classifying a
# 64-byte block is one load and three or four mask compares, the zero count one more
# compare and a popcount, and the "K graphic bytes end here" mask is built by doubling
# (2, 4, 8 bytes, then one overlapping shift) instead of K-1 shifts. The run bookkeeping
# is the portable loop's, step for step, so offsets, lengths and state are identical.
# Compiled with a target attribute (the build is baseline x86-64) and called only when
# offheap_simd is 1. Masked loads never touch the bytes past ``end``, so a range ending
# at the last byte of an mmap is safe.
cdef extern from *:
    """
    #if defined(__x86_64__) && defined(__GNUC__)
    #include <immintrin.h>
    #define OFFHEAP_STR_AVX512 1
    #define OFFHEAP_STR_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi,avx512vbmi2,bmi,bmi2,popcnt")))

    /* x & (x shifted up j bit positions, the bits shifted in taken from the top of px) */
    #define OFFHEAP_WIN(x, px, j) ((x) & (((x) << (j)) | ((px) >> (64 - (j)))))

    /* Positions of the set bits of w, plus add, to out[0..popcount(w)). Four stores
       happen whatever w holds (tzcnt of 0 is 64: junk past the count, overwritten
       later), so the common blocks (0 to 4 bits) take no data-dependent branch. */
    OFFHEAP_STR_TARGET static inline __attribute__((always_inline)) Py_ssize_t
    offheap_flatten(uint64_t *out, uint64_t w, uint64_t add)
    {
        Py_ssize_t n = (Py_ssize_t)_mm_popcnt_u64(w);
        out[0] = add + _tzcnt_u64(w); w = _blsr_u64(w);
        out[1] = add + _tzcnt_u64(w); w = _blsr_u64(w);
        out[2] = add + _tzcnt_u64(w); w = _blsr_u64(w);
        out[3] = add + _tzcnt_u64(w); w = _blsr_u64(w);
        if (n > 4) {
            for (Py_ssize_t i = 4; i < n; i++) {
                out[i] = add + _tzcnt_u64(w);
                w = _blsr_u64(w);
            }
        }
        return n;
    }

    OFFHEAP_STR_TARGET static inline __attribute__((always_inline)) Py_ssize_t
    offheap_scan_bytes_avx512_k(const unsigned char *p, Py_ssize_t pos, Py_ssize_t end,
                                const int K, int min_len, int ws, int high, int64_t base,
                                int *in_run_p, int64_t *rs_p, uint64_t *prev_p,
                                uint64_t *out_off, uint64_t *out_len, Py_ssize_t *count,
                                Py_ssize_t cap, uint64_t *zeros)
    {
        const __m512i c20 = _mm512_set1_epi8(0x20), c7f = _mm512_set1_epi8(0x7F);
        const __m512i glim = _mm512_set1_epi8(high ? (char)0xE0 : 0x5F);
        const __m512i c09 = _mm512_set1_epi8(9), wlim = _mm512_set1_epi8(ws ? 5 : 1);
        const int filter = min_len > K;     /* else every run of >= K bytes qualifies */
        /* window of K = window of P (a power of two <= 8) and R = K - P more bytes */
        const int P = K >= 8 ? 8 : K >= 4 ? 4 : K >= 2 ? 2 : 1;
        const int R = K - P;
        int in_run = *in_run_p;
        Py_ssize_t n_out = *count;
        uint64_t nzero = 0;
        /* Events of one 512-byte chunk, absolute offsets: a run of >= K bytes holds a
           contiguous stretch of window ends; its first one (K-1 bytes after the run's
           start) and the run's end (its first non-graphic byte) are its two events.
           Events alternate start, end, start, ...: an odd count leaves a run open,
           and its start is carried to the next chunk as ev[0]. */
        uint64_t ev[1 + 512 + 4];
        Py_ssize_t nev = 0;
        if (in_run)
            ev[nev++] = (uint64_t)*rs_p + (uint64_t)(K - 1);
        /* Bits before the first block: an open run of >= K bytes has (at least) its
           last K-1 bytes graphic; a shorter one is ``prev`` (zeros before it). */
        uint64_t prev = *prev_p;
        uint64_t p1 = in_run ? ~0ULL : prev;
        uint64_t p2 = p1 & ((p1 << 1) | (in_run ? 1 : 0));
        uint64_t p4 = p2 & ((p2 << 2) | (in_run ? 3 : 0));
        uint64_t p8 = p4 & ((p4 << 4) | (in_run ? 15 : 0));
        uint64_t pem = in_run ? ~0ULL : 0;

        while (pos < end) {
            /* At most 256 strings end in a chunk. With less room than that and 40 more
               the portable loop takes over: it stops (output full) at the very block
               where it would have stopped alone, so even the state words it leaves
               behind are the same on both paths. */
            if (n_out + 296 > cap)
                break;
            Py_ssize_t stop = end - pos > 512 ? pos + 512 : end;
            while (pos < stop) {
                Py_ssize_t nb = stop - pos;
                uint64_t valid = ~0ULL;
                __m512i x;
                if (nb >= 64) {
                    nb = 64;
                    x = _mm512_loadu_si512((const void *)(p + pos));
                } else {
                    valid = (1ULL << nb) - 1;
                    x = _mm512_maskz_loadu_epi8(valid, p + pos);
                }
                __mmask64 g = _mm512_mask_cmplt_epu8_mask(valid, _mm512_sub_epi8(x, c20), glim);
                if (high)
                    g = _mm512_mask_cmpneq_epi8_mask(g, x, c7f);
                g |= _mm512_mask_cmplt_epu8_mask(valid, _mm512_sub_epi8(x, c09), wlim);
                if (zeros)
                    nzero += (uint64_t)_mm_popcnt_u64(_mm512_mask_testn_epi8_mask(valid, x, x));
                uint64_t m = (uint64_t)g, em;
                uint64_t a2 = P >= 2 ? OFFHEAP_WIN(m, p1, 1) : 0;
                uint64_t a4 = P >= 4 ? OFFHEAP_WIN(a2, p2, 2) : 0;
                uint64_t a8 = P >= 8 ? OFFHEAP_WIN(a4, p4, 4) : 0;
                uint64_t aP = P == 8 ? a8 : P == 4 ? a4 : P == 2 ? a2 : m;
                uint64_t pP = P == 8 ? p8 : P == 4 ? p4 : P == 2 ? p2 : p1;
                em = R ? OFFHEAP_WIN(aP, pP, R ? R : 1) : aP;
                p1 = m; p2 = a2; p4 = a4; p8 = a8;
                prev = m;
                /* first window ends (em after a non-end) and run ends (non-graphic
                   after an em); whether a block holds one is a coin toss in real
                   dumps, so nothing branches on it */
                uint64_t emp = (em << 1) | (pem >> 63);
                pem = em;
                nev += offheap_flatten(ev + nev, (em & ~emp) | (~m & valid & emp),
                                       (uint64_t)(base + pos));
                pos += nb;
            }
            /* pair them up: (window end - K + 1, run end) */
            for (Py_ssize_t i = 0; i + 1 < nev; i += 2) {
                uint64_t st = ev[i] - (uint64_t)(K - 1), L = ev[i + 1] - st;
                out_off[n_out] = st;
                out_len[n_out] = L;
                n_out += filter ? L >= (uint64_t)min_len : 1;
            }
            if (nev & 1) {
                ev[0] = ev[nev - 1];
                nev = 1;
            } else {
                nev = 0;
            }
        }
        *in_run_p = (int)nev;
        *prev_p = prev;
        if (nev)
            *rs_p = (int64_t)(ev[0] - (uint64_t)(K - 1));
        *count = n_out;
        if (zeros)
            *zeros += nzero;
        return pos;
    }

    /* K as a constant for the common minimum lengths, so the window code folds */
    OFFHEAP_STR_TARGET static Py_ssize_t
    offheap_scan_bytes_avx512(const unsigned char *p, Py_ssize_t pos, Py_ssize_t end,
                              int K, int min_len, int ws, int high, int64_t base,
                              int *in_run_p, int64_t *rs_p, uint64_t *prev_p,
                              uint64_t *out_off, uint64_t *out_len, Py_ssize_t *count,
                              Py_ssize_t cap, uint64_t *zeros)
    {
    #define OFFHEAP_SCAN_K(k) offheap_scan_bytes_avx512_k(p, pos, end, k, min_len, ws, high, base, in_run_p, rs_p, prev_p, out_off, out_len, count, cap, zeros)
        switch (K) {
        case 4: return OFFHEAP_SCAN_K(4);
        case 8: return OFFHEAP_SCAN_K(8);
        case 10: return OFFHEAP_SCAN_K(10);
        case 16: return OFFHEAP_SCAN_K(16);
        default: return OFFHEAP_SCAN_K(K);
        }
    #undef OFFHEAP_SCAN_K
    }
    #else
    #define OFFHEAP_STR_AVX512 0
    static Py_ssize_t offheap_scan_bytes_avx512(const unsigned char *p, Py_ssize_t pos, Py_ssize_t end,
            int K, int min_len, int ws, int high, int64_t base, int *in_run_p, int64_t *rs_p,
            uint64_t *prev_p, uint64_t *out_off, uint64_t *out_len, Py_ssize_t *count,
            Py_ssize_t cap, uint64_t *zeros) { return pos; }
    #endif
    """
    const int OFFHEAP_STR_AVX512
    Py_ssize_t offheap_scan_bytes_avx512(const unsigned char *p, Py_ssize_t pos, Py_ssize_t end,
                                         int K, int min_len, int ws, int high, int64_t base,
                                         int *in_run_p, int64_t *rs_p, uint64_t *prev_p,
                                         uint64_t *out_off, uint64_t *out_len, Py_ssize_t *count,
                                         Py_ssize_t cap, uint64_t *zeros) noexcept nogil

ctypedef uint64_t u64

cdef u64 ONES8 = 0x0101010101010101ULL
cdef u64 HIGH8 = 0x8080808080808080ULL
cdef u64 LOW7 = 0x7F7F7F7F7F7F7F7FULL
cdef u64 GATHER = 0x0102040810204080ULL
cdef u64 ALL = 0xFFFFFFFFFFFFFFFFULL

# state array layout, shared with the twin (_strings_py.py)
cdef enum:
    ST_OPEN = 0      # 1 if a run/chain touches the end of the last range
    ST_START = 1     # its absolute start offset
    ST_UNITS = 2     # graphic units in it so far
    ST_NEXT = 3      # absolute offset where its next unit would start

# encoding letter -> (unit size, lane of the character byte inside a unit)
ENCODINGS = {"s": (1, 0), "S": (1, 0), "b": (2, 1), "l": (2, 0), "B": (4, 3), "L": (4, 0)}


cdef inline u64 _load8(const unsigned char *p, Py_ssize_t pos, Py_ssize_t n) noexcept nogil:
    """8 bytes at pos, little-endian, zero-padded past n (zero is never graphic)."""
    cdef u64 x = 0
    if pos + 8 <= n:
        memcpy(&x, p + pos, 8)
    elif pos < n:
        memcpy(&x, p + pos, <size_t>(n - pos))
    return le64toh(x)


cdef inline u64 _gather(u64 h) noexcept nogil:
    # High bit of byte i -> bit i (a multiply moves all eight without carries).
    return ((h >> 7) * GATHER) >> 56


cdef inline u64 _between(u64 x, u64 lo, u64 hi) noexcept nogil:
    # High bit of each byte set iff lo < byte < hi, exact per byte for bytes < 0x80
    # (bit-twiddling "hasbetween"; lo, hi <= 128 so no carry crosses a byte).
    cdef u64 x7 = x & LOW7
    return (ONES8 * (127 + hi) - x7) & ~x & (x7 + ONES8 * (127 - lo)) & HIGH8


cdef inline u64 _graphic8(u64 x, u64 ws_hi, u64 high) noexcept nogil:
    # printable 0x20-0x7E, TAB (ws_hi=10) or TAB..CR (ws_hi=14), bytes >= 0x80 if high
    return _gather(_between(x, 0x1F, 0x7F) | _between(x, 0x08, ws_hi) | (x & high))


cdef inline u64 _zero8(u64 x) noexcept nogil:
    return _gather(~(((x & LOW7) + LOW7) | x) & HIGH8)


cdef inline bint _is_graphic(unsigned char c, u64 ws_hi, u64 high) noexcept nogil:
    return (0x20 <= c <= 0x7E) or c == 9 or (ws_hi == 14 and 9 <= c <= 13) or (high != 0 and c >= 0x80)


cdef inline u64 _graphic64(const unsigned char *p, Py_ssize_t pos, Py_ssize_t n,
                           u64 ws_hi, u64 high) noexcept nogil:
    cdef u64 w[8]
    cdef u64 anyb = 0
    cdef u64 m = 0
    cdef int i
    if OFFHEAP_SSE2 and pos + 64 <= n:
        return offheap_graphic64(p + pos, ws_hi == 14, high != 0)
    if pos + 64 <= n:
        memcpy(w, p + pos, 64)
        for i in range(8):
            w[i] = le64toh(w[i])
            anyb |= w[i]
    else:
        for i in range(8):
            w[i] = _load8(p, pos + 8 * i, n)
            anyb |= w[i]
    if anyb == 0:           # zeroed memory is common in arenas: skip it cheaply
        return 0
    for i in range(8):
        m |= _graphic8(w[i], ws_hi, high) << (8 * i)
    return m


cdef inline u64 _zero64(const unsigned char *p, Py_ssize_t pos, Py_ssize_t n) noexcept nogil:
    cdef u64 m = 0
    cdef int i
    if OFFHEAP_SSE2 and pos + 64 <= n:
        return offheap_zero64(p + pos)
    for i in range(8):
        m |= _zero8(_load8(p, pos + 8 * i, n)) << (8 * i)
    return m


cdef inline u64 _low_bits(Py_ssize_t nbits) noexcept nogil:
    if nbits >= 64:
        return ALL
    if nbits <= 0:
        return 0
    return (<u64>1 << nbits) - 1


cdef inline u64 _shr(u64 lo, u64 hi, int j) noexcept nogil:
    # bit i of the result = bit i+j of the 128-bit value hi:lo (0 < j < 64)
    return (lo >> j) | (hi << (64 - j))


@cython.boundscheck(False)
@cython.wraparound(False)
cdef Py_ssize_t _scan_bytes(const unsigned char *p, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t end,
                            int min_len, u64 ws_hi, u64 high, int64_t base, u64 *st,
                            u64 *out_off, u64 *out_len, Py_ssize_t *count,
                            Py_ssize_t cap, u64 *zeros) noexcept nogil:
    """Single-byte encodings (s, S). Returns the position reached (end, or earlier
    when the output is nearly full; the state then describes that position).
    With ``zeros``, adds the number of 0x00 bytes read to it (the block is in the
    cache already: counting here saves attribution a pass over the dump)."""
    # A run start is found as the end of a window of K graphic bytes, so runs shorter
    # than K (most of them in binary data) cost nothing; K <= min_len keeps it exact.
    cdef int K = min_len if min_len < 16 else 16
    cdef int j
    cdef bint in_run = False
    cdef int64_t rs = 0          # absolute start of the current run
    cdef int64_t L
    cdef u64 prev = 0, m, em, z, w, valid
    cdef Py_ssize_t nb, e, b, t
    cdef int cur, in_run_i
    cdef u64 old_open = st[ST_OPEN]
    cdef int64_t old_start = <int64_t>st[ST_START]

    if st[ST_OPEN]:
        L = base + pos - <int64_t>st[ST_START]
        if L >= K:
            in_run = True
            rs = <int64_t>st[ST_START]
        elif L > 0:
            prev = ALL << (64 - L)

    if OFFHEAP_STR_AVX512 and offheap_simd:
        in_run_i = in_run
        pos = offheap_scan_bytes_avx512(p, pos, end, K, min_len, ws_hi == 14, high != 0, base,
                                        &in_run_i, &rs, &prev, out_off, out_len, count, cap, zeros)
        in_run = in_run_i != 0
        # the portable loop below finishes when the output is nearly full

    while pos < end:
        if count[0] + 40 > cap:
            break
        nb = end - pos
        if nb > 64:
            nb = 64
        valid = _low_bits(nb)
        m = _graphic64(p, pos, n, ws_hi, high) & valid
        if zeros != NULL:
            if nb == 64:
                zeros[0] += offheap_nzero64(p + pos)
            else:
                for t in range(pos, pos + nb):
                    zeros[0] += p[t] == 0
        em = m
        for j in range(1, K):
            em &= (m << j) | (prev >> (64 - j))
        cur = 0
        while True:
            if in_run:
                z = ~m & valid & (ALL << cur)
                if z == 0:
                    break
                e = <Py_ssize_t>__builtin_ctzll(z)
                L = base + pos + e - rs
                if L >= min_len:
                    out_off[count[0]] = <u64>rs
                    out_len[count[0]] = <u64>L
                    count[0] += 1
                in_run = False
                cur = <int>e
            else:
                w = em & (ALL << cur)
                if w == 0:
                    break
                b = <Py_ssize_t>__builtin_ctzll(w)
                rs = base + pos + b - K + 1
                in_run = True
                cur = <int>b
        prev = m
        pos += nb

    if in_run:
        st[ST_OPEN] = 1
        st[ST_START] = <u64>rs
        st[ST_UNITS] = <u64>(base + pos - rs)
    else:
        # The trailing run is shorter than K: find it by looking back a few bytes.
        t = 0
        while t < K and t < pos and _is_graphic(p[pos - 1 - t], ws_hi, high):
            t += 1
        if t > 0 and t == pos and old_open and old_start <= base:
            st[ST_START] = <u64>old_start          # the run began before this buffer
            st[ST_UNITS] = <u64>(base + pos - old_start)
            st[ST_OPEN] = 1
        elif t > 0:
            st[ST_OPEN] = 1
            st[ST_START] = <u64>(base + pos - t)
            st[ST_UNITS] = <u64>t
        else:
            st[ST_OPEN] = 0
    st[ST_NEXT] = st[ST_START] + st[ST_UNITS]
    return pos


@cython.boundscheck(False)
@cython.wraparound(False)
cdef Py_ssize_t _scan_units(const unsigned char *p, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t end,
                            int min_len, int k, bint big, u64 ws_hi, int64_t base, u64 *st,
                            u64 *out_off, u64 *out_len, Py_ssize_t *count,
                            Py_ssize_t cap) noexcept nogil:
    """16- and 32-bit encodings (b, l, B, L): chains of graphic units at stride k."""
    cdef u64 A, Ahi, Z, Zhi, G
    cdef Py_ssize_t nb, limit
    cdef int b
    cdef int64_t a
    cdef bint is_open = st[ST_OPEN] != 0
    cdef int64_t cs = <int64_t>st[ST_START]
    cdef int64_t units = <int64_t>st[ST_UNITS]
    cdef int64_t nx = <int64_t>st[ST_NEXT]

    while pos < end:
        if count[0] + 70 > cap:
            break
        nb = end - pos
        if nb > 64:
            nb = 64
        A = _graphic64(p, pos, n, ws_hi, 0)
        Ahi = _graphic8(_load8(p, pos + 64, n), ws_hi, 0)
        if A == 0 and Ahi == 0:
            G = 0      # no graphic byte at all: no unit can be graphic
        else:
            Z = _zero64(p, pos, n)
            Zhi = _zero8(_load8(p, pos + 64, n))
            if k == 2:
                if big:
                    G = Z & _shr(A, Ahi, 1)
                else:
                    G = A & _shr(Z, Zhi, 1)
            else:
                if big:
                    G = Z & _shr(Z, Zhi, 1) & _shr(Z, Zhi, 2) & _shr(A, Ahi, 3)
                else:
                    G = A & _shr(Z, Zhi, 1) & _shr(Z, Zhi, 2) & _shr(Z, Zhi, 3)
            # a unit needs all k bytes before the end of the data; the padding is not data
            limit = n - k + 1 - pos
            G &= _low_bits(limit) & _low_bits(nb)
        while G:
            b = __builtin_ctzll(G)
            G &= G - 1
            a = base + pos + b
            if is_open and a == nx:
                units += 1
                nx += k
            else:
                if is_open and units >= min_len:
                    out_off[count[0]] = <u64>cs
                    out_len[count[0]] = <u64>(units * k)
                    count[0] += 1
                is_open = True
                cs = a
                units = 1
                nx = a + k
        pos += nb

    if is_open and nx < base + pos:
        # the unit at nx was examined and is not graphic: the chain has ended
        if units >= min_len:
            out_off[count[0]] = <u64>cs
            out_len[count[0]] = <u64>(units * k)
            count[0] += 1
        is_open = False
    st[ST_OPEN] = 1 if is_open else 0
    st[ST_START] = <u64>cs
    st[ST_UNITS] = <u64>units
    st[ST_NEXT] = <u64>nx
    return pos


def check_encoding(str encoding):
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ValueError(f"unknown encoding {encoding!r}: use one of s, S, b, l, B, L") from None


cdef int _check_scan(Py_ssize_t n, Py_ssize_t begin, Py_ssize_t end, int min_len, u64[::1] state,
                     u64[::1] zero_count) except -1:
    """The arguments every string scan takes, checked (``n``: the buffer's size)."""
    if min_len < 1:
        raise ValueError(f"minimum string length must be >= 1, not {min_len}")
    if state.shape[0] != 4:
        raise ValueError("state must hold 4 uint64 values")
    if begin < 0 or end < begin or end > n:
        raise ValueError(f"range [{begin}, {end}) is outside the buffer of {n} bytes")
    if zero_count is not None and zero_count.shape[0] != 1:
        raise ValueError("zero_count must hold 1 uint64 value")
    return 0


cdef inline void _close_run(u64 *st, int min_len, int k, u64 *out_off, u64 *out_len,
                            Py_ssize_t *count) noexcept nogil:
    """End the run the state holds open (the data ends): output it if it is long
    enough (the outputs must have room for one more string)."""
    if st[ST_UNITS] >= <u64>min_len:
        out_off[count[0]] = st[ST_START]
        out_len[count[0]] = st[ST_UNITS] * <u64>k
        count[0] += 1
    st[ST_OPEN] = 0


@cython.boundscheck(False)
@cython.wraparound(False)
def find_strings(const unsigned char[::1] buf, Py_ssize_t begin, Py_ssize_t end, bint final,
                 int min_len, str encoding, bint whitespace, u64 base, u64[::1] state,
                 u64[::1] zero_count=None):
    """Find the strings GNU ``strings -a`` would print, among units starting in [begin, end).

    ``buf`` may hold bytes past ``end`` (needed: k-1 of them, unless ``buf`` reaches the
    end of the data); ``base`` is the absolute offset of ``buf[0]``. ``state`` (4 x uint64,
    zeros to start) carries a run that reaches ``end`` into the next call; with ``final``
    the run is closed instead. Returns ``(offsets, lengths)``: uint64 arrays of absolute
    start offsets and byte lengths (units x unit size) of the strings that ended here.
    ``zero_count`` (1 x uint64), if given, has the number of 0x00 bytes in
    ``buf[begin:end]`` added to it, as ``count_zero_bytes`` gives it.
    """
    cdef int k, lane
    k, lane = check_encoding(encoding)
    _check_scan(buf.shape[0], begin, end, min_len, state, zero_count)
    cdef Py_ssize_t n = buf.shape[0]
    cdef u64 ws_hi = 14 if whitespace else 10
    cdef u64 high = HIGH8 if encoding == "S" else 0
    cdef bint big = encoding in ("b", "B")
    cdef Py_ssize_t cap = (end - begin) // 128 + 1024
    out_off = np.empty(cap, dtype=np.uint64)
    out_len = np.empty(cap, dtype=np.uint64)
    cdef u64[::1] o_off = out_off
    cdef u64[::1] o_len = out_len
    cdef Py_ssize_t count = 0
    cdef Py_ssize_t pos = begin
    cdef const unsigned char *p = &buf[0] if n > 0 else NULL
    cdef u64 *stp = &state[0]
    cdef u64 *zp = NULL
    if zero_count is not None:
        zp = &zero_count[0]
        if k != 1:                         # the unit scan does not read every byte
            zp[0] += <u64>count_zero_bytes(buf, begin, end)
            zp = NULL

    while True:
        with nogil:
            if k == 1:
                pos = _scan_bytes(p, n, pos, end, min_len, ws_hi, high, <int64_t>base, stp,
                                  &o_off[0], &o_len[0], &count, cap, zp)
            else:
                pos = _scan_units(p, n, pos, end, min_len, k, big, ws_hi, <int64_t>base, stp,
                                  &o_off[0], &o_len[0], &count, cap)
        if pos >= end:
            break
        cap *= 2                           # output nearly full: grow and resume
        out_off = np.resize(out_off, cap)
        out_len = np.resize(out_len, cap)
        o_off = out_off
        o_len = out_len

    if final and state[ST_OPEN]:
        if count >= cap:
            out_off = np.resize(out_off, cap + 1)
            out_len = np.resize(out_len, cap + 1)
            o_off = out_off
            o_len = out_len
        _close_run(stp, min_len, k, &o_off[0], &o_len[0], &count)
    if count * 2 < cap:
        # few strings: do not keep the whole reservation alive behind a view
        return out_off[:count].copy(), out_len[:count].copy()
    return out_off[:count], out_len[:count]


cdef inline Py_ssize_t _ndigits(u64 v, int radix) noexcept nogil:
    # constant divisors per branch: shifts for 8 and 16, a multiply for 10 (a 64-bit
    # division by a variable costs tens of cycles, and there are millions of offsets)
    cdef Py_ssize_t d = 1
    if radix == 16:
        while v >= 16:
            v >>= 4
            d += 1
    elif radix == 8:
        while v >= 8:
            v >>= 3
            d += 1
    else:
        while v >= 10:
            v //= 10
            d += 1
    return d


cdef inline void _put_digits(char *o, u64 v, Py_ssize_t nd, int radix) noexcept nogil:
    cdef const char *digits = "0123456789abcdef"
    cdef Py_ssize_t j
    if radix == 16:
        for j in range(nd - 1, -1, -1):
            o[j] = digits[v & 15]
            v >>= 4
    elif radix == 8:
        for j in range(nd - 1, -1, -1):
            o[j] = digits[v & 7]
            v >>= 3
    else:
        for j in range(nd - 1, -1, -1):
            o[j] = digits[v % 10]
            v //= 10


@cython.boundscheck(False)
@cython.wraparound(False)
def format_strings(const unsigned char[::1] buf, u64 base, const u64[::1] offsets,
                   const u64[::1] lengths, str encoding, int radix, bytes prefix, bytes sep):
    """Render strings as GNU ``strings`` prints them: ``prefix`` (e.g. ``b"file: "``), the
    offset as ``%7lo``/``%7ld``/``%7lx`` and a space when ``radix`` is 8/10/16 (0: none),
    the characters, then ``sep``. Every string must lie inside ``buf`` (absolute offset
    ``base``). Returns one bytes object, built without a Python object per string."""
    cdef int k, lane
    k, lane = check_encoding(encoding)
    if radix not in (0, 8, 10, 16):
        raise ValueError(f"radix must be 0, 8, 10 or 16, not {radix}")
    cdef Py_ssize_t count = offsets.shape[0]
    if lengths.shape[0] != count:
        raise ValueError("offsets and lengths differ in length")
    cdef Py_ssize_t n = buf.shape[0]
    cdef Py_ssize_t i, j, total = 0, nd, plen = len(prefix), slen = len(sep)
    cdef u64 rel, ln
    for i in range(count):
        if offsets[i] < base or offsets[i] - base + lengths[i] > <u64>n:
            raise ValueError(f"string at offset {offsets[i]} is not inside the buffer")
        total += plen + slen + <Py_ssize_t>(lengths[i] // <u64>k)
        if radix:
            nd = _ndigits(offsets[i], radix)
            total += (nd if nd > 7 else 7) + 1
    out = PyBytes_FromStringAndSize(NULL, total)
    cdef char *o = PyBytes_AS_STRING(out)
    cdef const char *pp = prefix
    cdef const char *sp = sep
    cdef const unsigned char *src = &buf[0] if n > 0 else NULL
    cdef u64 v
    with nogil:
        for i in range(count):
            memcpy(o, pp, plen)
            o += plen
            if radix:
                v = offsets[i]
                nd = _ndigits(v, radix)
                if nd < 7:
                    for j in range(7 - nd):
                        o[j] = 32
                    o += 7 - nd
                _put_digits(o, v, nd, radix)
                o += nd
                o[0] = 32
                o += 1
            rel = offsets[i] - base
            ln = lengths[i]
            if k == 1:
                memcpy(o, src + rel, <size_t>ln)
                o += ln
            else:
                j = <Py_ssize_t>(rel + <u64>lane)
                while j < <Py_ssize_t>(rel + ln):
                    o[0] = <char>src[j]
                    o += 1
                    j += k
            memcpy(o, sp, slen)
            o += slen
    return out


@cython.boundscheck(False)
@cython.wraparound(False)
def count_zero_bytes(const unsigned char[::1] buf, Py_ssize_t begin, Py_ssize_t end):
    """Number of 0x00 bytes in ``buf[begin:end]`` (zeroed memory is its own class)."""
    cdef Py_ssize_t n = buf.shape[0]
    if begin < 0 or end < begin or end > n:
        raise ValueError(f"range [{begin}, {end}) is outside the buffer of {n} bytes")
    cdef Py_ssize_t pos = begin, total = 0
    cdef const unsigned char *p = &buf[0] if n > 0 else NULL
    cdef u64 x
    with nogil:
        while pos + 8 <= end:
            memcpy(&x, p + pos, 8)
            # one high bit per zero byte; a multiply sums them (no popcnt in a baseline build)
            total += <Py_ssize_t>((((~(((x & LOW7) + LOW7) | x) & HIGH8) >> 7) * ONES8) >> 56)
            pos += 8
        while pos < end:
            total += p[pos] == 0
            pos += 1
    return total
