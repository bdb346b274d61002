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
#                  Checked but not used by this kernel (see "Lanes" below; the root
#                  skip derives its own byte sets from trans); kept in the table
#                  layout for other consumers.
#
# The state is the row offset of the current DFA state (0 = root); the caller
# carries it from one window to the next, so matches spanning windows are found.
# Offsets reported are absolute START offsets: base + end_index + 1 - len.

cimport cython
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t

from libc.string cimport memcpy, memmove, memset

import numpy as _np
import weakref as _weakref

cdef extern from *:
    """
    #include <stdint.h>
    #if defined(__SSE2__)
    #include <emmintrin.h>
    #endif

    /* Lanes: the range is cut into up to four parts, each run by its own automaton
       ("lane"); stepping four lanes in one loop overlaps their table loads, where a
       single automaton waits for the load of each next state (one dependent load per
       byte). The lanes stage the steps that reach a state with output, (position,
       state), one block at a time; expanding those into (offset, pattern id) runs
       after the block, so the stepping loop has one branch per byte, taken only
       where a match ends.
       Four lanes stepping every byte beat one automaton that tests the start-pair
       filter at every position (this kernel's earlier form): on arena dumps 1.5-9 %
       of the positions pass that filter, and each pass costs a mispredicted branch.
       The exception is an automaton that only a few rare bytes leave the root from
       (see "Root skip" below): there SSE2 finds the candidates 64 positions at a
       time, and one automaton stepping only from them beats the lanes (28 ms against
       45 ms per 64 MiB for five '"name"' signatures). */
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

    /* Root skip, for automata that few bytes can leave the root from (e.g. every
       pattern starts with '"'): one automaton that jumps over the bytes where no
       match can start. Without 1-byte patterns, a position i can be skipped (the
       automaton treated as at the root before i + 1) unless buf[i:i+2] spells a trie
       node of depth 2: reading a byte pair that leads nowhere leaves the automaton in
       the state the second byte alone leads to from the root. So SSE2 marks the
       positions whose byte is a start byte and whose next byte is a second byte of
       some pattern (a superset of the real pairs, which is still exact), the DFA
       steps from the first such position until it falls back to depth <= 1, and the
       search resumes at the byte that state stands for. On arena dumps 7 % of the
       bytes are '"', but only ~1 % begin '"u', '"p', '"m', '"t' or '"r' (the five
       user signatures); 37 % start one of the built-in patterns (those run as lanes). */
    typedef struct {
        unsigned char b1[4];  /* start bytes, repeated to fill four */
        unsigned char b2[8];  /* second bytes, repeated to fill eight */
        int pair;             /* 0: no second-byte test (1-byte patterns, or too many) */
        Py_ssize_t d1max;     /* row offsets <= d1max are the root and its children */
        unsigned char is1[256], is2[256];
    } offheap_ac_skipset;

    /* Candidate positions among p[j:j+64) as a bit mask (reads p[j+64] too). The
       second-byte test runs only where a start byte is. */
    static inline uint64_t offheap_ac_cand64(const unsigned char *p, const offheap_ac_skipset *S) {
    #if defined(__SSE2__)
        /* the byte sets are repeated to fill four/eight, so comparing with fewer
           (when there are at most one/four distinct) is the same test */
        uint64_t e = 0, f = 0;
        int k;
        const __m128i v0 = _mm_set1_epi8((char)S->b1[0]);
        if (S->b1[0] == S->b1[1] && S->b1[0] == S->b1[2] && S->b1[0] == S->b1[3]) {
            for (k = 0; k < 4; k++) {
                __m128i x = _mm_loadu_si128((const __m128i *)(p + 16 * k));
                e |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpeq_epi8(x, v0)) << (16 * k);
            }
        } else {
            const __m128i v1 = _mm_set1_epi8((char)S->b1[1]), v2 = _mm_set1_epi8((char)S->b1[2]),
                          v3 = _mm_set1_epi8((char)S->b1[3]);
            for (k = 0; k < 4; k++) {
                __m128i x = _mm_loadu_si128((const __m128i *)(p + 16 * k));
                __m128i c = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, v0), _mm_cmpeq_epi8(x, v1)),
                                         _mm_or_si128(_mm_cmpeq_epi8(x, v2), _mm_cmpeq_epi8(x, v3)));
                e |= (uint64_t)(uint16_t)_mm_movemask_epi8(c) << (16 * k);
            }
        }
        if (e == 0 || !S->pair)
            return e;
        const __m128i w0 = _mm_set1_epi8((char)S->b2[0]), w1 = _mm_set1_epi8((char)S->b2[1]),
                      w2 = _mm_set1_epi8((char)S->b2[2]), w3 = _mm_set1_epi8((char)S->b2[3]);
        if (S->b2[4] == S->b2[0] && S->b2[5] == S->b2[1] && S->b2[6] == S->b2[2] && S->b2[7] == S->b2[3]) {
            for (k = 0; k < 4; k++) {
                __m128i y = _mm_loadu_si128((const __m128i *)(p + 16 * k + 1));
                __m128i c = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(y, w0), _mm_cmpeq_epi8(y, w1)),
                                         _mm_or_si128(_mm_cmpeq_epi8(y, w2), _mm_cmpeq_epi8(y, w3)));
                f |= (uint64_t)(uint16_t)_mm_movemask_epi8(c) << (16 * k);
            }
            return e & f;
        }
        const __m128i w4 = _mm_set1_epi8((char)S->b2[4]), w5 = _mm_set1_epi8((char)S->b2[5]),
                      w6 = _mm_set1_epi8((char)S->b2[6]), w7 = _mm_set1_epi8((char)S->b2[7]);
        for (k = 0; k < 4; k++) {
            __m128i y = _mm_loadu_si128((const __m128i *)(p + 16 * k + 1));
            __m128i c = _mm_or_si128(
                _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(y, w0), _mm_cmpeq_epi8(y, w1)),
                             _mm_or_si128(_mm_cmpeq_epi8(y, w2), _mm_cmpeq_epi8(y, w3))),
                _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(y, w4), _mm_cmpeq_epi8(y, w5)),
                             _mm_or_si128(_mm_cmpeq_epi8(y, w6), _mm_cmpeq_epi8(y, w7))));
            f |= (uint64_t)(uint16_t)_mm_movemask_epi8(c) << (16 * k);
        }
        return e & f;
    #else
        uint64_t m = 0;
        int k;
        for (k = 0; k < 64; k++)
            if (S->is1[p[k]] && (!S->pair || S->is2[p[k + 1]]))
                m |= 1ULL << k;
        return m;
    #endif
    }

    /* The first candidate position in p[j:cnt), or cnt. *cb and *cm cache the mask
       of the 64 positions from *cb, computed once for all the candidates in them. */
    static inline Py_ssize_t offheap_ac_next_start(const unsigned char *p, Py_ssize_t j,
                                                   Py_ssize_t cnt, const offheap_ac_skipset *S,
                                                   Py_ssize_t *cb, uint64_t *cm) {
        for (;;) {
            if (j >= *cb && j < *cb + 64) {
                uint64_t m = *cm & (~0ULL << (j - *cb));
                if (m)
                    return *cb + __builtin_ctzll(m);
                j = *cb + 64;
            }
            if (j + 65 > cnt)
                break;
            *cb = j;
            *cm = offheap_ac_cand64(p + j, S);
        }
        /* the last byte of the part is a candidate whatever follows it (its next
           byte is not read: it may lie past the part or the buffer) */
        for (; j < cnt; j++)
            if (S->is1[p[j]] && (!S->pair || j + 1 >= cnt || S->is2[p[j + 1]]))
                return j;
        return cnt;
    }

    /* Lane 0 alone over cnt bytes with the root skip; stages like offheap_ac_block1,
       and like it takes and leaves the exact state (any state: a block may end, and
       a window begin, inside a match). */
    static Py_ssize_t offheap_ac_block_skip(const unsigned char *buf, offheap_ac_lane *L,
                                            Py_ssize_t cnt, const int32_t *trans,
                                            const int32_t *classes,
                                            const offheap_ac_skipset *S_in, uint64_t *stage) {
        /* a local copy: no store through w can change it, so the compiler keeps the
           broadcast byte sets in registers for the whole block */
        const offheap_ac_skipset Sl = *S_in, *S = &Sl;
        const unsigned char *p = buf + L[0].i;
        Py_ssize_t s = L[0].s, t_, j = 0, d1 = S->d1max, cb = -128;
        uint64_t *w = stage, cm = 0;
        if (s != 0 && s <= d1) {
            /* a child of the root carried in from the last block: its byte is not
               in this part, so step once before the search may take over */
            t_ = trans[s + classes[p[0]]];
            if (t_ < 0) {
                t_ = ~t_;
                *w++ = (uint32_t)t_;
            }
            s = t_;
            j = 1;
        }
        while (j < cnt) {
            if (s <= d1) {
                /* at the root, or at a child of it: that state is the root after
                   reading p[j - 1] (j >= 1 here), so the search may resume there */
                if (s != 0)
                    j--;
                s = 0;
                j = offheap_ac_next_start(p, j, cnt, S, &cb, &cm);
                if (j >= cnt)
                    break;
                /* two steps from a candidate (to a child of the root, then on), so
                   a resumed search always starts past the last candidate */
                t_ = trans[classes[p[j]]];
                if (t_ < 0) {
                    t_ = ~t_;
                    *w++ = ((uint64_t)j << 32) | (uint32_t)t_;
                }
                s = t_;
                if (++j >= cnt)
                    break;
            }
            t_ = trans[s + classes[p[j]]];
            if (t_ < 0) {
                t_ = ~t_;
                *w++ = ((uint64_t)j << 32) | (uint32_t)t_;
            }
            s = t_;
            j++;
        }
        L[0].s = (int32_t)s;
        return w - stage;
    }

    /* Run the next block: the four lanes in lockstep while all four have bytes left,
       else the first unfinished lane alone (the last few bytes, or short ranges).
       Returns the number of steps staged, or -1 when every lane is finished. */
    static Py_ssize_t offheap_ac_block(const unsigned char *buf, offheap_ac_lane *L, int nl,
                                       const int32_t *trans, const int32_t *classes,
                                       const offheap_ac_skipset *S, uint64_t *stage) {
        Py_ssize_t cnt = OFFHEAP_AC_BLOCK, m;
        int k;
        if (S != NULL) {   /* one lane, root skip, in the whole stage */
            cnt = 4 * OFFHEAP_AC_BLOCK;
            L[0].i0 = L[0].i;
            if (L[0].i >= L[0].end)
                return -1;
            if (L[0].end - L[0].i < cnt)
                cnt = L[0].end - L[0].i;
            m = offheap_ac_block_skip(buf, L, cnt, trans, classes, S, stage);
            L[0].i += cnt;
            return m;
        }
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
    ctypedef struct offheap_ac_skipset:
        unsigned char b1[4]
        unsigned char b2[8]
        int pair
        Py_ssize_t d1max
        unsigned char is1[256]
        unsigned char is2[256]
    Py_ssize_t offheap_ac_block(const unsigned char* buf, offheap_ac_lane* L, int nl,
                                const int32_t* trans, const int32_t* classes,
                                const offheap_ac_skipset* S, uint64_t* stage) noexcept nogil
    int offheap_ac_expand(offheap_ac_lane* L, const uint64_t* stage, Py_ssize_t m,
                          Py_ssize_t* r_io, const offheap_ac_dfa* D) noexcept nogil
    int32_t offheap_ac_warm(const unsigned char* buf, Py_ssize_t i, Py_ssize_t end,
                            const int32_t* trans, const int32_t* classes) noexcept nogil
    int offheap_ac_rows_ok(const int32_t* trans, Py_ssize_t n, uint32_t nstates,
                           unsigned shift, uint32_t inv) noexcept nogil


cdef extern from *:
    """
    /* Fingerprint search (Teddy, as in Hyperscan), for small pattern sets on CPUs
       with AVX-512 VBMI. Each distinct pattern text goes to one of eight buckets (a
       bit of a byte); for K distances d before a match's END, a 128-entry table gives
       per byte the buckets whose texts have that byte d positions before their end
       (bytes folded modulo 0x80, and every byte for a text shorter than d + 1: a
       superset, exactness comes from the check). One vpermi2b per distance looks up
       64 positions at once; AND-ing the K results leaves, per end position, the
       buckets that may end a match there. Each candidate is checked with a masked
       64-byte compare against its buckets' texts. Candidates come in end order, and
       the texts are numbered longest first, so the outputs come out in the DFA's
       order without sorting (at one end position the matching texts are suffixes of
       each other, all of different lengths). */
    #define OFFHEAP_TD_MAXTEXT 64
    #define OFFHEAP_TD_MAXIDS 256
    typedef struct {
        int K, ntext, nids;
        int32_t d[8];                        /* distances before the end, < maxlen */
        unsigned char tab[8][128];           /* per distance: byte & 0x7f -> buckets */
        uint64_t btexts[8];                  /* texts of each bucket (bit i: text i) */
        uint64_t htexts[256];                /* texts of the buckets in a bucket byte */
        int32_t tlen[OFFHEAP_TD_MAXTEXT];    /* longest first */
        int32_t tptr[OFFHEAP_TD_MAXTEXT + 1];
        int32_t tids[OFFHEAP_TD_MAXIDS];     /* pattern ids of text i: tids[tptr[i]:tptr[i+1]] */
        unsigned char pat[OFFHEAP_TD_MAXTEXT][64];
        /* run state: end positions j..end remain; outputs n of cap */
        Py_ssize_t j, end, n, cap;
        uint64_t base;
        uint64_t *off;
        int32_t *ids;
    } offheap_teddy;

    #if defined(__x86_64__) && defined(__GNUC__)
    #include <immintrin.h>
    #define OFFHEAP_TD_TARGET __attribute__((target( \
        "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vbmi2,bmi2,popcnt")))

    /* Candidates of one chunk of up to OFFHEAP_TD_CHUNK end positions, staged by the
       lookup loop: bucket byte, block and position in the block of each. */
    #define OFFHEAP_TD_CHUNK 4096
    typedef struct {
        unsigned char h[OFFHEAP_TD_CHUNK + 64], blk[OFFHEAP_TD_CHUNK + 64],
                      pos[OFFHEAP_TD_CHUNK + 64];
    } offheap_td_cands;

    /* Check the nc staged candidates of the chunk at end position j, emitting the
       matches from out[n]; returns the new n. */
    OFFHEAP_TD_TARGET static __attribute__((noinline)) Py_ssize_t
    offheap_td_check(const unsigned char *buf, const offheap_teddy *T, Py_ssize_t j,
                     const offheap_td_cands *C, Py_ssize_t nc, uint64_t *restrict off,
                     int32_t *restrict ids, Py_ssize_t n) {
        Py_ssize_t r;
        for (r = 0; r < nc; r++) {
            Py_ssize_t e1 = j + 64 * (Py_ssize_t)C->blk[r] + C->pos[r] + 1;  /* past the end */
            uint64_t c = T->htexts[C->h[r]];
            do {
                int i = __builtin_ctzll(c);
                int L = T->tlen[i];
                __mmask64 pm = _bzhi_u64(~0ULL, L);
                __m512i x = _mm512_maskz_loadu_epi8(pm, buf + e1 - L);
                __m512i y = _mm512_loadu_si512((const void *)T->pat[i]);
                c &= c - 1;
                if (_mm512_mask_cmpneq_epi8_mask(pm, x, y) == 0) {
                    uint64_t s = T->base + (uint64_t)(e1 - L);
                    int q = T->tptr[i], q1 = T->tptr[i + 1];
                    do {
                        off[n] = s;
                        ids[n] = T->tids[q];
                        n++;
                    } while (++q < q1);
                }
            } while (c);
        }
        return n;
    }

    /* Matches ending at T->j .. T->end - 1 (the caller keeps T->j - d >= the range
       start for every distance d). Returns 1 when done, 0 when the outputs may not
       fit a chunk's candidates (the caller grows T->off/T->ids and calls again).
       Reads nothing at or past T->end. K is a constant in each instance, so the
       lookups unroll and the tables stay in registers. The lookup loop stages each
       block's candidates without a branch (vpcompressb of the bucket bytes and
       positions, stored whole, the count advancing by popcount); checking them
       afterwards, chunk by chunk, keeps the mispredicted branches (a match sits in
       a random block) out of both loops. */
    OFFHEAP_TD_TARGET static inline __attribute__((always_inline)) int
    offheap_td_run_k(const unsigned char *buf, offheap_teddy *T, offheap_td_cands *C,
                     const int K) {
        __m512i lo[8], hi[8];
        Py_ssize_t d[8];
        Py_ssize_t j = T->j, end = T->end;
        Py_ssize_t n = T->n, cap = T->cap;
        const __m512i iota = _mm512_set_epi8(
            63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48,
            47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32,
            31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16,
            15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        int k;
        for (k = 0; k < K; k++) {
            lo[k] = _mm512_loadu_si512((const void *)T->tab[k]);
            hi[k] = _mm512_loadu_si512((const void *)(T->tab[k] + 64));
            d[k] = T->d[k];
        }
        while (j < end) {
            Py_ssize_t cend = end - j > OFFHEAP_TD_CHUNK ? j + OFFHEAP_TD_CHUNK : end;
            Py_ssize_t nc = 0, b;
            __m512i acc;
            uint64_t m;
            for (b = 0; j + 64 * b + 64 <= cend; b++) {
                const unsigned char *p = buf + j + 64 * b;
                acc = _mm512_permutex2var_epi8(lo[0], _mm512_loadu_si512((const void *)(p - d[0])), hi[0]);
                for (k = 1; k < K; k++)
                    acc = _mm512_and_si512(acc, _mm512_permutex2var_epi8(
                        lo[k], _mm512_loadu_si512((const void *)(p - d[k])), hi[k]));
                m = _mm512_test_epi8_mask(acc, acc);
                _mm512_storeu_si512((void *)(C->h + nc), _mm512_maskz_compress_epi8(m, acc));
                _mm512_storeu_si512((void *)(C->pos + nc), _mm512_maskz_compress_epi8(m, iota));
                _mm512_storeu_si512((void *)(C->blk + nc), _mm512_set1_epi8((char)b));
                nc += __builtin_popcountll(m);
            }
            if (j + 64 * b < cend) {
                /* the range's last, partial block: masked loads read no byte at or
                   past end */
                const unsigned char *p = buf + j + 64 * b;
                __mmask64 lm = _bzhi_u64(~0ULL, (unsigned)(cend - j - 64 * b));
                acc = _mm512_set1_epi8(-1);
                for (k = 0; k < K; k++)
                    acc = _mm512_and_si512(acc, _mm512_permutex2var_epi8(
                        lo[k], _mm512_maskz_loadu_epi8(lm, p - d[k]), hi[k]));
                m = _mm512_mask_test_epi8_mask(lm, acc, acc);
                _mm512_storeu_si512((void *)(C->h + nc), _mm512_maskz_compress_epi8(m, acc));
                _mm512_storeu_si512((void *)(C->pos + nc), _mm512_maskz_compress_epi8(m, iota));
                _mm512_storeu_si512((void *)(C->blk + nc), _mm512_set1_epi8((char)b));
                nc += __builtin_popcountll(m);
            }
            if (nc) {
                if (cap - n < nc * (Py_ssize_t)T->nids) {
                    T->j = j;
                    T->n = n;
                    return 0;
                }
                n = offheap_td_check(buf, T, j, C, nc, T->off, T->ids, n);
            }
            j = cend;
        }
        T->j = end;
        T->n = n;
        return 1;
    }

    #define OFFHEAP_TD_RUN(K) \
        OFFHEAP_TD_TARGET static int offheap_td_run##K(const unsigned char *buf, offheap_teddy *T) { \
            offheap_td_cands C; \
            return offheap_td_run_k(buf, T, &C, K); }
    OFFHEAP_TD_RUN(1) OFFHEAP_TD_RUN(2) OFFHEAP_TD_RUN(3) OFFHEAP_TD_RUN(4)
    OFFHEAP_TD_RUN(5) OFFHEAP_TD_RUN(6) OFFHEAP_TD_RUN(7) OFFHEAP_TD_RUN(8)

    static int offheap_td_run(const unsigned char *buf, offheap_teddy *T) {
        int h, b;
        for (h = 0; h < 256; h++) {
            T->htexts[h] = 0;
            for (b = 0; b < 8; b++)
                if (h >> b & 1)
                    T->htexts[h] |= T->btexts[b];
        }
        switch (T->K) {
        case 1: return offheap_td_run1(buf, T);
        case 2: return offheap_td_run2(buf, T);
        case 3: return offheap_td_run3(buf, T);
        case 4: return offheap_td_run4(buf, T);
        case 5: return offheap_td_run5(buf, T);
        case 6: return offheap_td_run6(buf, T);
        case 7: return offheap_td_run7(buf, T);
        default: return offheap_td_run8(buf, T);
        }
    }
    #else
    static int offheap_td_run(const unsigned char *buf, offheap_teddy *T) { return -1; }
    #endif

    /* The DFA from state *s over buf[i:end), expanding outputs into off/ids from *n
       (the caller reserves (end - i) * (most outputs of one step) entries). */
    static void offheap_ac_head(const unsigned char *buf, Py_ssize_t i, Py_ssize_t end,
                                int32_t *s_io, const offheap_ac_dfa *D,
                                uint64_t *off, int32_t *ids, Py_ssize_t *n_io) {
        int32_t s = *s_io, t;
        Py_ssize_t n = *n_io;
        for (; i < end; i++) {
            t = D->trans[s + D->classes[buf[i]]];
            if (t < 0) {
                uint32_t st;
                int64_t q;
                t = ~t;
                st = ((uint32_t)t >> D->shift) * D->inv;
                for (q = D->out_ptr[st]; q < D->out_ptr[st + 1]; q++) {
                    int32_t pid = D->out_ids[q];
                    off[n] = D->base + (uint64_t)i + 1u - (uint64_t)D->pat_len[pid];
                    ids[n] = pid;
                    n++;
                }
            }
            s = t;
        }
        *s_io = s;
        *n_io = n;
    }
    """
    enum: OFFHEAP_TD_MAXTEXT
    enum: OFFHEAP_TD_MAXIDS
    ctypedef struct offheap_teddy:
        int K, ntext, nids
        int32_t d[8]
        unsigned char tab[8][128]
        uint64_t btexts[8]
        uint64_t htexts[256]
        int32_t tlen[64]
        int32_t tptr[65]
        int32_t tids[256]
        unsigned char pat[64][64]
        Py_ssize_t j, end, n, cap
        uint64_t base
        uint64_t* off
        int32_t* ids
    int offheap_td_run(const unsigned char* buf, offheap_teddy* T) noexcept nogil
    void offheap_ac_head(const unsigned char* buf, Py_ssize_t i, Py_ssize_t end, int32_t* s_io,
                         const offheap_ac_dfa* D, uint64_t* off, int32_t* ids,
                         Py_ssize_t* n_io) noexcept nogil


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
    automaton's, in the same order. When one to four rare bytes start every pattern
    (``_ac_skip_plan``), one automaton runs instead and jumps over the positions where
    no match can start; its states and output are those of stepping every byte.
    On CPUs with AVX-512 VBMI, sets of at most 64 distinct texts of at most 64
    bytes (``_ac_simd_plan``) take a SIMD fingerprint search over the range instead
    (``offheap_td_run``), with the same output, order and state.

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
    if offheap_simd and length > warm:
        simd_plan = _ac_simd_plan(trans, classes, ncls, out_ptr, out_ids, pat_len)
        if simd_plan is not None:
            return _ac_scan_simd(bp, begin, end, &dfa, simd_plan, state)
    cdef Py_ssize_t nl = min(4, length // max(_AC_LANE_MIN, warm + 1))
    nl = max(nl, 1)
    cdef offheap_ac_skipset skipset
    cdef const offheap_ac_skipset* skip = NULL
    cdef int sb
    plan = _ac_skip_plan(trans, classes, ncls)
    if plan is not None:
        b1, b2, d1max = plan
        for sb in range(256):
            skipset.is1[sb] = sb in b1
            skipset.is2[sb] = b2 is not None and sb in b2
        for sb in range(4):
            skipset.b1[sb] = b1[sb % len(b1)]
        skipset.pair = b2 is not None
        for sb in range(8):
            skipset.b2[sb] = b2[sb % len(b2)] if b2 else 0
        skipset.d1max = d1max
        skip = &skipset
        nl = 1
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
            m = offheap_ac_block(bp, lanes, <int>nl, dfa.trans, dfa.classes, skip, sp)
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


# Fingerprint search plans: sets of at most this many distinct texts, none longer than
# 64 bytes (one masked 64-byte compare checks a candidate). Larger sets make most
# buckets fire (their byte sets fill up) and run as lanes or with the root skip.
cdef int _TD_MAXLEN = 64


# One-entry caches for what the kernels derive from an automaton's tables (texts,
# renumbered tables, plans): a dump's windows pass the same arrays again and again.
# An entry holds weak references to the arrays it came from (build_tables' arrays are
# never changed once built) and a copy of the small inputs, compared by value.

def _exporter(x):
    """The array a typed memoryview views; an array itself (not its ``base``: that
    is None for an array owning its data, and two views of one array share it)."""
    if isinstance(x, _np.ndarray):
        return x
    return getattr(x, "base", x)


def _weak_hit(cache, arrays, small):
    """The entry of ``cache`` (a one-element list) made from these very arrays (their
    exporters, for memoryviews) and equal ``small``, or None."""
    hit = cache[0]
    if hit is not None and hit[1] == small and all(
            r() is _exporter(x) for r, x in zip(hit[0], arrays)):
        return hit
    return None


def _weak_keep(cache, arrays, small, *value):
    """Make ``(refs, small, *value)`` the entry of ``cache`` (none for arrays whose
    exporter takes no weak references)."""
    try:
        cache[0] = (tuple(_weakref.ref(_exporter(x)) for x in arrays), small) + value
    except TypeError:
        cache[0] = None


_DFA_CACHE = [None]


def _dfa_texts_cached(trans, classes, int ncls, out_ptr, out_ids):
    """``_dfa_texts``, kept for the same tables (a copy of the list: callers sort it)."""
    arrays = (trans, classes, out_ptr, out_ids)
    hit = _weak_hit(_DFA_CACHE, arrays, ncls)
    if hit is None:
        texts = _dfa_texts(trans, classes, ncls, out_ptr, out_ids)
        _weak_keep(_DFA_CACHE, arrays, ncls, texts)
    else:
        texts = hit[2]
    return None if texts is None else list(texts)


def _ac_texts(trans, classes, int ncls, out_ptr, out_ids, pat_len):
    """The distinct pattern texts rebuilt from the DFA (``_dfa_texts``), as ``[(text,
    ids)]`` with the ids of each text ascending, longest text first; None if the tables
    are not the automaton of texts that build_tables makes, or disagree with
    ``pat_len`` (then no fingerprint search)."""
    texts = _dfa_texts_cached(trans, classes, ncls, out_ptr, out_ids)
    pl = _np.asarray(pat_len)
    if texts is None or sum(len(ids) for _, ids in texts) != pl.shape[0] \
            or any(len(x) != pl[i] for x, ids in texts for i in ids):
        return None
    texts.sort(key=lambda x: (-len(x[0]), x[0]))
    return texts


def _signs_agree(trans, int ncls, out_ptr):
    """True if exactly the entries leading to a state with output have the sign bit."""
    t = _np.asarray(trans)
    op = _np.asarray(out_ptr)
    return bool(_np.array_equal(t < 0, (op[1:] > op[:-1])[_np.where(t < 0, ~t, t) // ncls]))


def _dfa_texts(trans, classes, int ncls, out_ptr, out_ids):
    """The texts the automaton finds, ``[(text, ids)]`` (ids ascending), rebuilt from
    the tables alone, or None unless the tables are exactly the Aho-Corasick automaton
    of those texts (every transition and every state's output checked), so that the
    texts' occurrences are the automaton's matches: the SIMD searches (ac_scan's
    fingerprint search, vote_strings' voter) look for the texts, not the automaton.
    States are numbered breadth-first over the trie (as build_tables does), so a
    state's trie parent is the lowest-numbered state with an edge to it."""
    t = _np.asarray(trans)
    op = _np.asarray(out_ptr)
    oi = _np.asarray(out_ids)
    nst = t.shape[0] // ncls
    if nst < 2 or oi.shape[0] == 0:
        return None
    tgt = (_np.where(t < 0, ~t, t) // ncls).reshape(nst, ncls)
    if not _signs_agree(trans, ncls, out_ptr):
        return None
    flat = tgt.ravel()
    seen, first = _np.unique(flat, return_index=True)
    if seen.shape[0] != nst:
        return None
    parent = first // ncls
    col = first % ncls
    # breadth-first trie numbering: each state's first edge in comes from its parent
    if (parent[1:] >= _np.arange(1, nst)).any() or (col[1:] == 0).any():
        return None
    counts = _np.bincount(_np.asarray(classes), minlength=ncls)
    if (counts[1:] != 1).any():
        return None
    col_byte = _np.zeros(ncls, _np.int64)
    col_byte[_np.asarray(classes)] = _np.arange(256)
    depth = _np.zeros(nst, _np.int64)
    for x in range(1, nst):                 # parents come first
        depth[x] = depth[parent[x]] + 1
    if depth.max() > 64:
        return None
    child = _np.full((nst, ncls), -1, _np.int64)
    child[parent[1:], col[1:]] = _np.arange(1, nst)
    # the automaton these trie edges make, level by level: fail links, then rows
    exp = _np.zeros((nst, ncls), _np.int64)
    fail = _np.zeros(nst, _np.int64)
    exp[0] = _np.where(child[0] >= 0, child[0], 0)
    for d in range(1, int(depth.max()) + 1):
        lv = _np.flatnonzero(depth == d)
        if d > 1:
            fail[lv] = exp[fail[parent[lv]], col[lv]]
        exp[lv] = _np.where(child[lv] >= 0, child[lv], exp[fail[lv]])
    if not _np.array_equal(exp, tgt):
        return None
    # each pattern's own state: the shallowest state reporting it
    npat = int(oi.max()) + 1
    state_of_out = _np.repeat(_np.arange(nst), _np.diff(op))
    own = _np.full(npat, -1, _np.int64)
    order = _np.argsort(depth[state_of_out], kind="stable")
    for q in order[::-1].tolist():
        own[oi[q]] = state_of_out[q]
    if (own < 0).any():
        return None
    own_at = {}
    for p, st in enumerate(own.tolist()):
        own_at.setdefault(st, []).append(p)
    # every state reports its own patterns and its fail state's, nothing else
    if 0 in own_at:
        return None
    outs = [None] * nst
    for x in _np.argsort(depth, kind="stable").tolist():   # fail states are shallower
        mine = sorted(own_at.get(x, []) + (outs[fail[x]] if x else []))
        if sorted(oi[op[x]:op[x + 1]].tolist()) != mine:
            return None
        outs[x] = mine
    texts = []
    for st, ids in own_at.items():
        text = bytearray()
        s = st
        while s:
            text.append(int(col_byte[col[s]]))
            s = int(parent[s])
        texts.append((bytes(text[::-1]), sorted(ids)))
    texts.sort()
    return texts


def _ac_simd_plan(trans, classes, int ncls, out_ptr, out_ids, pat_len):
    """How the fingerprint search (offheap_td_run) runs these tables, or None to keep
    the other paths: ``(texts, dists, buckets)``: ``[(text, ids)]`` longest first, the
    distances before a match's end whose bytes the filter tests (at most eight), and
    the text numbers of each of the (at most eight) buckets."""
    pl = _np.asarray(pat_len)
    # (counting duplicates too: a quick refusal for large sets, which would pay for
    # the rebuild below at every call)
    if not 1 <= pl.shape[0] <= OFFHEAP_TD_MAXTEXT or pl.max() > _TD_MAXLEN or pl.min() < 1:
        return None
    if _np.asarray(trans).shape[0] > (1 << 20):
        return None
    texts = _ac_texts(trans, classes, ncls, out_ptr, out_ids, pat_len)
    if texts is None or len(texts) > OFFHEAP_TD_MAXTEXT:
        return None
    # a short text of common bytes (zeros, letters) would make candidates of a large
    # share of a dump's positions: the lanes step those faster
    if any(len(x) <= 2 and all(b in _AC_COMMON for b in x) for x, _ in texts):
        return None
    n = len(texts)
    maxlen = len(texts[0][0])
    if n <= 8:
        buckets = [[i] for i in range(n)]
    else:
        # texts of one length and a shared tail together: their byte sets stay small
        order = sorted(range(n), key=lambda i: (len(texts[i][0]), texts[i][0][::-1]))
        buckets = [sorted(order[n * b // 8:n * (b + 1) // 8]) for b in range(8)]
    # the last three bytes, and the second byte of each length (JSON keys differ most
    # right after their opening quote), then the fourth-last byte
    dists = [d for d in (0, 1, 2) if d < maxlen]
    for length in sorted({len(x) for x, _ in texts}, reverse=True):
        if len(dists) < 8 and length - 2 >= 3 and length - 2 not in dists:
            dists.append(length - 2)
    if len(dists) < 8 and 3 < maxlen and 3 not in dists:
        dists.append(3)
    return texts, dists, buckets


def _ac_path(trans, classes, int ncls, out_ptr, out_ids, pat_len):
    """Which path ac_scan takes for these tables over a range at least as long as the
    longest pattern: 'simd' (fingerprint search), 'skip' (root skip) or 'lanes'."""
    if offheap_simd and _ac_simd_plan(trans, classes, ncls, out_ptr, out_ids,
                                                  pat_len) is not None:
        return "simd"
    return "lanes" if _ac_skip_plan(trans, classes, ncls) is None else "skip"


cdef object _ac_scan_simd(const unsigned char* bp, Py_ssize_t begin, Py_ssize_t end,
                          const offheap_ac_dfa* dfa, plan, int32_t state):
    # The DFA from the carried state over the first maxlen - 1 bytes (matches ending
    # there may have begun in the last window), the fingerprint search for the
    # matches ending after them, and the final state from the root over the last
    # maxlen bytes: every state is a suffix of at most maxlen bytes, so that state is
    # exact. The caller ensures end - begin >= maxlen.
    cdef offheap_teddy T
    memset(&T, 0, sizeof(T))
    texts, dists, buckets = plan
    cdef Py_ssize_t maxlen = len(texts[0][0])
    cdef int i, k, b, q = 0
    T.K = len(dists)
    T.ntext = len(texts)
    for i in range(T.ntext):
        text, tids = texts[i]
        T.tlen[i] = len(text)
        T.tptr[i] = q
        for p in tids:
            T.tids[q] = p
            q += 1
        for k in range(len(text)):
            T.pat[i][k] = text[k]
    T.tptr[T.ntext] = q
    T.nids = q
    for k in range(T.K):
        T.d[k] = dists[k]
    for b in range(len(buckets)):
        for i in buckets[b]:
            T.btexts[b] |= (<uint64_t>1) << i
            text = texts[i][0]
            for k in range(T.K):
                if dists[k] < len(text):
                    T.tab[k][text[len(text) - 1 - dists[k]] & 0x7f] |= 1 << b
                else:
                    for q in range(128):
                        T.tab[k][q] |= 1 << b
    cdef Py_ssize_t length = end - begin
    # np.empty only reserves: pages are touched as outputs are written
    cdef Py_ssize_t cap = 4096 * T.nids + length // 16 + 1024
    off = _np.empty(cap, dtype=_np.uint64)
    ids = _np.empty(cap, dtype=_np.int32)
    T.off = <uint64_t*>_np_data(off)
    T.ids = <int32_t*>_np_data(ids)
    T.cap = cap
    T.base = dfa.base
    T.j = begin + maxlen - 1
    T.end = end
    cdef Py_ssize_t n = 0
    cdef int32_t s = state
    cdef int done
    with nogil:
        offheap_ac_head(bp, begin, begin + maxlen - 1, &s, dfa, T.off, T.ids, &n)
        T.n = n
        while True:
            done = offheap_td_run(bp, &T)
            if done:
                break
            with gil:
                cap = 2 * T.cap + 4096 * T.nids
                o = _np.empty(cap, dtype=_np.uint64)
                d = _np.empty(cap, dtype=_np.int32)
                memcpy(_np_data(o), T.off, T.n * sizeof(uint64_t))
                memcpy(_np_data(d), T.ids, T.n * sizeof(int32_t))
                off, ids = o, d
                T.off = <uint64_t*>_np_data(off)
                T.ids = <int32_t*>_np_data(ids)
                T.cap = cap
        s = offheap_ac_warm(bp, end - maxlen, end, dfa.trans, dfa.classes)
    n = T.n
    offsets, pids = off[:n], ids[:n]
    if n * 4 < T.cap:
        offsets, pids = offsets.copy(), pids.copy()
    return offsets, pids, int(s)


# Bytes that make a root skip pay: rare ones. Zero, 0xff, space, letters and digits
# fill much of a dump, where a single automaton stepping them would lose to the lanes.
_AC_COMMON = frozenset(b"\x00\xff 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _ac_skip_plan(trans, classes, int ncls):
    """How the kernel may skip at the root (see offheap_ac_block_skip), or None to run
    four lanes: ``(first, second, d1max)``, the bytes that leave the root (one to four,
    none common in dumps), the bytes that lead from a child of the root to a deeper
    state (None: no pair test, for 1-byte patterns or more than eight such bytes), and
    the largest row offset of a state that is the root or a child of it (0: resume only
    at the root, when there is no pair test or the children are not the rows right
    after the root's)."""
    t = _np.asarray(trans)
    cls = _np.asarray(classes)
    root = t[:ncls][cls]                        # per byte, the root's entry
    first = _np.flatnonzero(root != 0).tolist()
    if not 1 <= len(first) <= 4 or any(b in _AC_COMMON for b in first):
        return None
    rows = _np.where(root < 0, ~root, root)
    kids = sorted(set(rows[first].tolist()))
    if (root < 0).any():
        second = None                           # a 1-byte pattern: every start is a match
    else:
        shallow = _np.array([0] + kids)
        deep = set()
        for r in kids:
            row = t[r:r + ncls][cls]
            row = _np.where(row < 0, ~row, row)
            deep.update(_np.flatnonzero(~_np.isin(row, shallow)).tolist())
        second = sorted(deep) if 1 <= len(deep) <= 8 else None
    # resuming at a child of the root re-reads its byte: only if that reports nothing
    d1max = len(kids) * ncls if second is not None and kids == [
        ncls * (k + 1) for k in range(len(kids))] else 0
    return first, second, d1max


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
    if op.shape[0] != nstates + 1 or op[0] != 0 or op[nstates] != oi.shape[0] or _np.any(_np.diff(op) < 0):
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
