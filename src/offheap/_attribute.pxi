# Joining matches to strings: which payload type names each string.
#
# Matches arrive in the order the matching kernel reports them (by end position,
# the carried matches of a string still open first), so the string that contains a
# match never moves backwards: one merge walk assigns matches to strings, and the
# per-string vote is counted in a scratch array indexed by type. O(matches + strings).

cimport cython
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free

import functools as _functools


@cython.boundscheck(False)
@cython.wraparound(False)
def string_types(const uint64_t[::1] str_off, const uint64_t[::1] str_len,
                 const uint64_t[::1] m_off, const int32_t[::1] m_pid,
                 const int64_t[::1] pat_len, const int64_t[::1] pat_type,
                 const int64_t[::1] priority, int64_t[::1] pat_counts=None):
    """Type of each string (-1: no match inside it) and matches inside strings per type.

    A match counts for a string when it lies wholly inside it. A string takes the type
    with the highest ``priority`` among its matches, then the one with most matches in
    it, then the lowest type index. Matches must be in end-position order.

    With ``pat_counts`` (int64, one per pattern), the matches inside strings are also
    counted per pattern (as ``vote_strings`` counts them).
    """
    cdef Py_ssize_t ns = str_off.shape[0], nm = m_off.shape[0], ntypes = priority.shape[0]
    cdef Py_ssize_t npat = pat_len.shape[0]
    if str_len.shape[0] != ns or m_pid.shape[0] != nm or pat_type.shape[0] != npat:
        raise ValueError("array lengths differ")
    cdef Py_ssize_t i
    for i in range(npat):
        if not 0 <= pat_type[i] < ntypes:
            raise ValueError("pattern type out of range")
    if pat_counts is not None and pat_counts.shape[0] != npat:
        raise ValueError("pat_counts must hold one count per pattern")
    cdef bint bad = False
    cdef int32_t pid
    cdef Py_ssize_t k
    with nogil:
        for i in range(nm):
            pid = m_pid[i]
            if pid < 0 or pid >= npat:
                bad = True
                break
    if bad:
        raise ValueError("pattern id out of range")
    cdef bint counting = pat_counts is not None
    cls = np.full(ns, -1, dtype=np.int64)
    per_type = np.zeros(max(ntypes, 1), dtype=np.int64)
    cdef int64_t[::1] c = cls
    cdef int64_t[::1] pt = per_type
    cdef int64_t *votes = <int64_t *>calloc(max(ntypes, 1), sizeof(int64_t))
    cdef int64_t *touched = <int64_t *>calloc(max(ntypes, 1), sizeof(int64_t))
    if votes == NULL or touched == NULL:
        free(votes)
        free(touched)
        raise MemoryError()
    cdef Py_ssize_t s = 0, cur = -1, ntouched = 0, j
    cdef uint64_t mend
    cdef int64_t t, best, bt
    try:
        with nogil:
            for i in range(nm + 1):
                if i < nm:
                    mend = m_off[i] + <uint64_t>pat_len[m_pid[i]]
                    while s < ns and str_off[s] + str_len[s] < mend:
                        s += 1
                if i == nm or s != cur:
                    # close the vote of string `cur`
                    if cur >= 0 and ntouched:
                        best = -1
                        for j in range(ntouched):
                            bt = touched[j]
                            if best < 0 or priority[bt] > priority[best] or (
                                    priority[bt] == priority[best] and (
                                        votes[bt] > votes[best] or (votes[bt] == votes[best] and bt < best))):
                                best = bt
                        c[cur] = best
                        for j in range(ntouched):
                            votes[touched[j]] = 0
                        ntouched = 0
                    if i == nm:
                        break
                    cur = s
                if s < ns and m_off[i] >= str_off[s]:
                    if counting:
                        pat_counts[m_pid[i]] += 1
                    t = pat_type[m_pid[i]]
                    if votes[t] == 0:
                        touched[ntouched] = t
                        ntouched += 1
                    votes[t] += 1
                    pt[t] += 1
    finally:
        free(votes)
        free(touched)
    return cls, per_type


# Voting without match arrays: the automaton runs over the strings' bytes only, each
# string from the root (a match inside a string starts inside it, so nothing before
# the string matters), and each match's pattern is counted and its type voted for on
# the spot. With the built-in recognisers an arena dump holds ~4 million matches per
# 64 MiB, mostly short JSON pieces: writing them to arrays and joining them back to the
# strings cost more than finding them. Four strings are stepped at once ("lanes", as
# in _match.pxi: their table loads overlap), each lane taking the next string when its
# own ends.

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #define OFFHEAP_VOTE_BLOCK 2048
    typedef struct {
        const int32_t *trans, *classes, *out_ids;
        const int64_t *out_ptr, *pat_type, *priority;
        unsigned shift;
        uint32_t inv;
        Py_ssize_t ntypes;
        int64_t *counts;     /* per pattern: the matches counted so far */
        int64_t *votes;      /* 4 x ntypes: each lane's votes for its string */
        int32_t *touched;    /* 4 x ntypes: the types each lane has votes for */
        Py_ssize_t ntouched[4];
        const int64_t *W;    /* per string: what each of its matches counts (NULL: 1) */
        int64_t wk[4];       /* the weight of each lane's string */
    } offheap_vote;
    #define OFFHEAP_WEIGHT(W, i) ((W) ? (W)[i] : 1)

    /* Count the outputs of DFA state row `row` for lane k: its patterns into counts,
       their types into the lane's votes. */
    static inline void offheap_vote_out(offheap_vote *V, int k, uint32_t row) {
        uint32_t st = (row >> V->shift) * V->inv;
        int64_t q = V->out_ptr[st], q1 = V->out_ptr[st + 1];
        int64_t *votes = V->votes + k * V->ntypes;
        for (; q < q1; q++) {
            int32_t pid = V->out_ids[q];
            int64_t t = V->pat_type[pid];
            V->counts[pid] += V->wk[k];
            if (votes[t]++ == 0)
                V->touched[k * V->ntypes + V->ntouched[k]++] = (int32_t)t;
        }
    }

    /* The type lane k's string takes (-1: no match in it): highest priority, then
       most votes, then lowest index. Clears the lane's votes. */
    static int64_t offheap_vote_close(offheap_vote *V, int k) {
        int64_t *votes = V->votes + k * V->ntypes;
        int32_t *touched = V->touched + k * V->ntypes;
        int64_t best = -1;
        Py_ssize_t j;
        for (j = 0; j < V->ntouched[k]; j++) {
            int64_t t = touched[j];
            if (best < 0 || V->priority[t] > V->priority[best]
                    || (V->priority[t] == V->priority[best]
                        && (votes[t] > votes[best] || (votes[t] == votes[best] && t < best))))
                best = t;
        }
        for (j = 0; j < V->ntouched[k]; j++)
            votes[touched[j]] = 0;
        V->ntouched[k] = 0;
        return best;
    }

    /* Lane k's step: a table load that depends on the last, a rarely taken branch
       that stages (lane, row) when the new state has output, and a branch taken at
       the end of the lane's string, which stages (lane, END, string) and moves the
       lane to its next string, from the root. rel/len hold one entry past the last
       string, so that move never reads outside them. */
    #define OFFHEAP_VOTE_END (1ULL << 61)
    #define OFFHEAP_VOTE_STEP(k) {                                              \
        Py_ssize_t t_ = trans[s##k + classes[*p##k++]];                          \
        if (t_ < 0) {                                                             \
            t_ = ~t_;                                                              \
            *w++ = ((uint64_t)(k) << 62) | (uint32_t)t_;                           \
        }                                                                          \
        s##k = t_;                                                                 \
        if (p##k == E[k]) {                                                        \
            Py_ssize_t i_ = I[k];                                                  \
            *w++ = ((uint64_t)(k) << 62) | OFFHEAP_VOTE_END | (uint64_t)i_;        \
            I[k] = ++i_;                                                           \
            p##k = buf + rel[i_];                                                  \
            E[k] = p##k + len[i_];                                                 \
            s##k = 0;                                                              \
        }                                                                          \
    }

    /* n bytes of each of the four lanes (none runs out of strings in them) */
    static __attribute__((noinline)) Py_ssize_t
    offheap_vote_block4(const unsigned char *buf, const uint64_t *rel, const uint64_t *len,
                        const unsigned char **P, const unsigned char **E, Py_ssize_t *I,
                        Py_ssize_t *S, Py_ssize_t n,
                        const int32_t *trans, const int32_t *classes, uint64_t *stage) {
        const unsigned char *p0 = P[0], *p1 = P[1], *p2 = P[2], *p3 = P[3];
        Py_ssize_t s0 = S[0], s1 = S[1], s2 = S[2], s3 = S[3], j;
        uint64_t *w = stage;
        for (j = 0; j < n; j++) {
            OFFHEAP_VOTE_STEP(0) OFFHEAP_VOTE_STEP(1) OFFHEAP_VOTE_STEP(2) OFFHEAP_VOTE_STEP(3)
        }
        P[0] = p0; P[1] = p1; P[2] = p2; P[3] = p3;
        S[0] = s0; S[1] = s1; S[2] = s2; S[3] = s3;
        return w - stage;
    }

    /* One lane (k) over n bytes, counting and voting as it goes. */
    static void offheap_vote_run1(offheap_vote *V, int k, const unsigned char *p,
                                  Py_ssize_t n, Py_ssize_t *s_io) {
        const int32_t *trans = V->trans, *classes = V->classes;
        Py_ssize_t s = *s_io, j, t_;
        for (j = 0; j < n; j++) {
            t_ = trans[s + classes[p[j]]];
            if (t_ < 0) {
                t_ = ~t_;
                offheap_vote_out(V, k, (uint32_t)t_);
            }
            s = t_;
        }
        *s_io = s;
    }

    /* Cut strings [i0, ns) into four runs of about equal bytes, one per lane: lane k
       gets strings [I[k], B[k]), rem[k] bytes, and starts at the first, from the root. */
    static void offheap_vote_lanes(const unsigned char *buf, const uint64_t *rel,
                                   const uint64_t *len, Py_ssize_t i0, Py_ssize_t ns,
                                   const unsigned char **P, const unsigned char **E,
                                   Py_ssize_t *S, Py_ssize_t *I, Py_ssize_t *B, Py_ssize_t *rem) {
        uint64_t total = 0, acc = 0;
        Py_ssize_t i;
        int k;
        for (i = i0; i < ns; i++)
            total += len[i];
        i = i0;
        for (k = 0; k < 4; k++) {
            Py_ssize_t first = i;
            uint64_t goal = total / 4 * (uint64_t)(k + 1);
            rem[k] = 0;
            while (i < ns && (k == 3 || acc < goal)) {
                acc += len[i];
                rem[k] += (Py_ssize_t)len[i];
                i++;
            }
            I[k] = first;
            B[k] = i;
            P[k] = buf + rel[first];
            E[k] = P[k] + len[first];
            S[k] = 0;
        }
    }

    /* Vote strings [i0, ns) (each wholly inside buf, from buf + rel[i] for len[i]
       bytes, stepped from the root) into cls[i]. The strings are cut into four runs
       of about equal bytes, one per lane; rel and len hold ns + 1 entries. */
    static void offheap_vote_strings(offheap_vote *V, const unsigned char *buf,
                                     const uint64_t *rel, const uint64_t *len,
                                     Py_ssize_t i0, Py_ssize_t ns, int64_t *cls,
                                     uint64_t *stage) {
        const unsigned char *P[4], *E[4];
        Py_ssize_t S[4], I[4], B[4], rem[4], n, m, r, i;
        int k;
        offheap_vote_lanes(buf, rel, len, i0, ns, P, E, S, I, B, rem);
        for (k = 0; k < 4; k++)
            V->wk[k] = I[k] < ns ? OFFHEAP_WEIGHT(V->W, I[k]) : 1;
        for (;;) {
            n = OFFHEAP_VOTE_BLOCK;
            for (k = 0; k < 4; k++)
                if (rem[k] < n)
                    n = rem[k];
            if (n == 0)
                break;
            m = offheap_vote_block4(buf, rel, len, P, E, I, S, n, V->trans, V->classes, stage);
            for (k = 0; k < 4; k++)
                rem[k] -= n;
            for (r = 0; r < m; r++) {
                uint64_t g = stage[r];
                k = (int)(g >> 62);
                if (g & OFFHEAP_VOTE_END) {
                    i = (Py_ssize_t)(g & (OFFHEAP_VOTE_END - 1));
                    cls[i] = offheap_vote_close(V, k);
                    V->wk[k] = i + 1 < ns ? OFFHEAP_WEIGHT(V->W, i + 1) : 1;   /* the lane's next */
                } else
                    offheap_vote_out(V, k, (uint32_t)g);
            }
        }
        /* what is left of each lane, alone */
        for (k = 0; k < 4; k++) {
            while (I[k] < B[k]) {
                V->wk[k] = OFFHEAP_WEIGHT(V->W, I[k]);
                offheap_vote_run1(V, k, P[k], E[k] - P[k], &S[k]);
                cls[I[k]] = offheap_vote_close(V, k);
                i = ++I[k];
                P[k] = buf + rel[i];
                E[k] = P[k] + len[i];
                S[k] = 0;
            }
        }
    }

    /* The fast voter, for up to 64 types. The automaton's states are renumbered so
       that those reporting matches come last (rows >= thr): staging a step is then a
       store and a compare-and-add, with no branch to mispredict on the millions of
       JSON matches. A staged step counts its state once (per-pattern counts are
       expanded from the states after the scan) and ORs the state's types, as bits of
       their rank (by priority, then index), into the lane's mask. A string takes its
       lowest set rank; only when the next set bit has the same priority do votes
       decide, and the string is then stepped again by the exact voter. */
    typedef struct {
        const int32_t *trans, *classes;
        Py_ssize_t thr;
        unsigned shift;
        uint32_t inv;
        const uint64_t *tmask;
        int64_t *hist;
        const int64_t *rank_type, *rank_prio;
        /* per renumbered state, its votes: (type, matches) pairs, CSR */
        const int64_t *sv_ptr, *sv_type, *sv_count;
        int64_t *tvotes;      /* ntypes, zero between ties */
        offheap_vote *V;      /* original tables, lane 0's votes: for ties */
        const int64_t *W;     /* per string: what each of its matches counts (NULL: 1) */
    } offheap_fvote;

    /* The fast voter's step loop runs all four lanes for c bytes, c the bytes left
       in the shortest of their strings, so no byte checks for a string's end; then a
       branch-free refill moves each lane that ended to its next string (a string
       ends in some lane every ~20 bytes: branches there mispredict). Every step
       stores its state to its lane's stage and keeps it when it has output (rows
       >= thr); a lane that ended stages OFFHEAP_FVOTE_END. The lanes' own stages
       (not one tagged stream) leave the step one store, a compare and a subtract.
       A refill also prefetches strings ahead (the first two lines of the third
       string on, the second line of the next): the strings typed are often
       scattered (a window's first copies only), and with 1,000 patterns the vote
       took 11.6 ms per 64 MiB without, 8.9 with the next string's first line, 8.0
       with these. */
    #define OFFHEAP_FVOTE_CAP 2048      /* stage entries per lane */
    #define OFFHEAP_FVOTE_END 0xFFFFFFFFu
    #define OFFHEAP_FVOTE_STEP(k) {                                             \
        uint32_t t_ = (uint32_t)trans[s##k + classes[b##k[j]]];                  \
        w[(k) * OFFHEAP_FVOTE_CAP + x##k] = t_;                                  \
        x##k += (t_ >= thr);                                                     \
        s##k = t_;                                                               \
    }
    #define OFFHEAP_FVOTE_REFILL(k) {                                           \
        int end_ = e##k == b##k;                                                 \
        const unsigned char *np_, *ne_;                                          \
        w[(k) * OFFHEAP_FVOTE_CAP + x##k] = OFFHEAP_FVOTE_END;                   \
        x##k += end_;                                                            \
        i##k += end_;                                                            \
        np_ = buf + rel[i##k];                                                   \
        ne_ = np_ + len[i##k];                                                   \
        __builtin_prefetch(buf + rel[i##k + 1] + 64);                            \
        __builtin_prefetch(buf + rel[i##k + 3]);                                 \
        __builtin_prefetch(buf + rel[i##k + 3] + 64);                            \
        b##k = end_ ? np_ : b##k;                                                \
        e##k = end_ ? ne_ : e##k;                                                \
        s##k = end_ ? 0 : s##k;                                                  \
    }

    /* The type of the string p[0:n) from its types' rank bits m (-1: none). On a tie
       on priority, votes decide: counted from the string's staged states ent[0:nent)
       when the stage still holds them all, else by stepping the string again. */
    static int64_t offheap_fvote_close(const offheap_fvote *F, uint64_t m,
                                       const unsigned char *p, Py_ssize_t n,
                                       const uint32_t *ent, Py_ssize_t nent) {
        offheap_vote *V = F->V;
        int r0, r1, r, best;
        uint64_t m0 = m, mm;
        Py_ssize_t s = 0, j, t_;
        if (!m)
            return -1;
        r0 = __builtin_ctzll(m);
        m &= m - 1;
        if (!m)
            return F->rank_type[r0];
        r1 = __builtin_ctzll(m);
        if (F->rank_prio[r1] != F->rank_prio[r0])
            return F->rank_type[r0];
        if (ent != NULL) {
            int64_t *tv = F->tvotes, bv;
            for (j = 0; j < nent; j++) {
                uint32_t st;
                int64_t q;
                if (ent[j] == OFFHEAP_FVOTE_END)
                    continue;
                st = (ent[j] >> F->shift) * F->inv;
                for (q = F->sv_ptr[st]; q < F->sv_ptr[st + 1]; q++)
                    tv[F->sv_type[q]] += F->sv_count[q];
            }
            /* ranks of one priority are in type order: more votes wins, else the first */
            best = r0;
            bv = tv[F->rank_type[r0]];
            for (mm = m; mm; mm &= mm - 1) {
                r = __builtin_ctzll(mm);
                if (F->rank_prio[r] != F->rank_prio[r0])
                    break;
                if (tv[F->rank_type[r]] > bv) {
                    best = r;
                    bv = tv[F->rank_type[r]];
                }
            }
            for (mm = m0; mm; mm &= mm - 1)
                tv[F->rank_type[__builtin_ctzll(mm)]] = 0;
            return F->rank_type[best];
        }
        /* the stage no longer holds the string's start: count the votes by stepping
           it again (lane 0, nothing added to counts) */
        for (j = 0; j < n; j++) {
            t_ = V->trans[s + V->classes[p[j]]];
            if (t_ < 0) {
                uint32_t st;
                int64_t q, q1, *votes = V->votes;
                t_ = ~t_;
                st = ((uint32_t)t_ >> V->shift) * V->inv;
                for (q = V->out_ptr[st], q1 = V->out_ptr[st + 1]; q < q1; q++) {
                    int64_t t = V->pat_type[V->out_ids[q]];
                    if (votes[t]++ == 0)
                        V->touched[V->ntouched[0]++] = (int32_t)t;
                }
            }
            s = t_;
        }
        return offheap_vote_close(V, 0);
    }

    /* Count lane k's staged states (x of them) and close its strings, from cls[*cur] on. */
    static void offheap_fvote_flush(const offheap_fvote *F, const uint32_t *stage, Py_ssize_t x,
                                    uint64_t *mask, Py_ssize_t *cur, const unsigned char *buf,
                                    const uint64_t *rel, const uint64_t *len, int64_t *cls) {
        int64_t *hist = F->hist;
        const uint64_t *tmask = F->tmask;
        unsigned shift = F->shift;
        uint32_t inv = F->inv;
        uint64_t m = *mask;
        Py_ssize_t i = *cur, r, first = -1;    /* the string's first entry, if staged here */
        for (r = 0; r < x; r++) {
            uint32_t g = stage[r];
            if (g == OFFHEAP_FVOTE_END) {
                cls[i] = offheap_fvote_close(F, m, buf + rel[i], (Py_ssize_t)len[i],
                                             first < 0 ? NULL : stage + first, r - first);
                i++;
                m = 0;
                first = r + 1;
            } else {
                uint32_t st = (g >> shift) * inv;
                hist[st] += OFFHEAP_WEIGHT(F->W, i);
                m |= tmask[st];
            }
        }
        *mask = m;
        *cur = i;
    }

    /* stage: 4 * OFFHEAP_FVOTE_CAP uint32 */
    static void offheap_fvote_strings(offheap_fvote *F, const unsigned char *buf,
                                      const uint64_t *rel, const uint64_t *len,
                                      Py_ssize_t i0, Py_ssize_t ns, int64_t *cls,
                                      uint32_t *w) {
        const int32_t *trans = F->trans, *classes = F->classes;
        uint32_t thr = (uint32_t)F->thr;
        const unsigned char *P[4], *E[4];
        Py_ssize_t S[4], I[4], B[4], rem[4], cur[4], i, j, t_;
        uint64_t mask[4] = {0, 0, 0, 0};
        int k;
        offheap_vote_lanes(buf, rel, len, i0, ns, P, E, S, I, B, rem);
        for (k = 0; k < 4; k++)
            cur[k] = I[k];
        {
            /* the lanes as scalars: arrays would live in memory across the step loop */
            const unsigned char *b0 = P[0], *b1 = P[1], *b2 = P[2], *b3 = P[3];
            const unsigned char *e0 = E[0], *e1 = E[1], *e2 = E[2], *e3 = E[3];
            Py_ssize_t l0 = I[0], l1 = I[1], l2 = I[2], l3 = I[3];
            Py_ssize_t x0 = 0, x1 = 0, x2 = 0, x3 = 0;
            uint32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            #define i0 l0
            #define i1 l1
            #define i2 l2
            #define i3 l3
            while (i0 < B[0] && i1 < B[1] && i2 < B[2] && i3 < B[3]) {
                Py_ssize_t c = e0 - b0, d, mx = x0;
                d = e1 - b1; c = d < c ? d : c;
                d = e2 - b2; c = d < c ? d : c;
                d = e3 - b3; c = d < c ? d : c;
                mx = x1 > mx ? x1 : mx;
                mx = x2 > mx ? x2 : mx;
                mx = x3 > mx ? x3 : mx;
                if (mx > OFFHEAP_FVOTE_CAP - 257) {
                    offheap_fvote_flush(F, w, x0, &mask[0], &cur[0], buf, rel, len, cls);
                    offheap_fvote_flush(F, w + OFFHEAP_FVOTE_CAP, x1, &mask[1], &cur[1], buf, rel, len, cls);
                    offheap_fvote_flush(F, w + 2 * OFFHEAP_FVOTE_CAP, x2, &mask[2], &cur[2], buf, rel, len, cls);
                    offheap_fvote_flush(F, w + 3 * OFFHEAP_FVOTE_CAP, x3, &mask[3], &cur[3], buf, rel, len, cls);
                    x0 = x1 = x2 = x3 = mx = 0;
                }
                /* room for c states and an END in every lane's stage */
                if (c > OFFHEAP_FVOTE_CAP - 2 - mx)
                    c = OFFHEAP_FVOTE_CAP - 2 - mx;
                b0 += c; b1 += c; b2 += c; b3 += c;
                for (j = -c; j < 0; j++) {
                    OFFHEAP_FVOTE_STEP(0) OFFHEAP_FVOTE_STEP(1) OFFHEAP_FVOTE_STEP(2) OFFHEAP_FVOTE_STEP(3)
                }
                OFFHEAP_FVOTE_REFILL(0) OFFHEAP_FVOTE_REFILL(1) OFFHEAP_FVOTE_REFILL(2) OFFHEAP_FVOTE_REFILL(3)
            }
            #undef i0
            #undef i1
            #undef i2
            #undef i3
            offheap_fvote_flush(F, w, x0, &mask[0], &cur[0], buf, rel, len, cls);
            offheap_fvote_flush(F, w + OFFHEAP_FVOTE_CAP, x1, &mask[1], &cur[1], buf, rel, len, cls);
            offheap_fvote_flush(F, w + 2 * OFFHEAP_FVOTE_CAP, x2, &mask[2], &cur[2], buf, rel, len, cls);
            offheap_fvote_flush(F, w + 3 * OFFHEAP_FVOTE_CAP, x3, &mask[3], &cur[3], buf, rel, len, cls);
            P[0] = b0; P[1] = b1; P[2] = b2; P[3] = b3;
            E[0] = e0; E[1] = e1; E[2] = e2; E[3] = e3;
            I[0] = l0; I[1] = l1; I[2] = l2; I[3] = l3;
            S[0] = s0; S[1] = s1; S[2] = s2; S[3] = s3;
        }
        /* what is left of each lane, alone */
        for (k = 0; k < 4; k++) {
            while (I[k] < B[k]) {
                i = I[k];
                for (j = 0; j < E[k] - P[k]; j++) {
                    t_ = trans[S[k] + classes[P[k][j]]];
                    if (t_ >= F->thr) {
                        uint32_t st = ((uint32_t)t_ >> F->shift) * F->inv;
                        F->hist[st] += OFFHEAP_WEIGHT(F->W, i);
                        mask[k] |= F->tmask[st];
                    }
                    S[k] = t_;
                }
                cls[i] = offheap_fvote_close(F, mask[k], buf + rel[i], (Py_ssize_t)len[i], NULL, 0);
                mask[k] = 0;
                i = ++I[k];
                P[k] = buf + rel[i];
                E[k] = P[k] + len[i];
                S[k] = 0;
            }
        }
    }
    """
    ctypedef struct offheap_vote:
        const int32_t* trans
        const int32_t* classes
        const int32_t* out_ids
        const int64_t* out_ptr
        const int64_t* pat_type
        const int64_t* priority
        unsigned shift
        uint32_t inv
        Py_ssize_t ntypes
        int64_t* counts
        int64_t* votes
        int32_t* touched
        Py_ssize_t ntouched[4]
        const int64_t* W
        int64_t wk[4]
    enum: OFFHEAP_VOTE_BLOCK
    ctypedef struct offheap_fvote:
        const int32_t* trans
        const int32_t* classes
        Py_ssize_t thr
        unsigned shift
        uint32_t inv
        const uint64_t* tmask
        int64_t* hist
        const int64_t* rank_type
        const int64_t* rank_prio
        const int64_t* sv_ptr
        const int64_t* sv_type
        const int64_t* sv_count
        int64_t* tvotes
        offheap_vote* V
        const int64_t* W
    void offheap_fvote_strings(offheap_fvote* F, const unsigned char* buf, const uint64_t* rel,
                               const uint64_t* len, Py_ssize_t i0, Py_ssize_t ns, int64_t* cls,
                               uint32_t* stage) noexcept nogil
    void offheap_vote_run1(offheap_vote* V, int k, const unsigned char* p, Py_ssize_t n,
                           Py_ssize_t* s_io) noexcept nogil
    int64_t offheap_vote_close(offheap_vote* V, int k) noexcept nogil
    void offheap_vote_strings(offheap_vote* V, const unsigned char* buf, const uint64_t* rel,
                              const uint64_t* len, Py_ssize_t i0, Py_ssize_t ns, int64_t* cls,
                              uint64_t* stage) noexcept nogil


# The AVX-512 voter: no automaton. Every pattern is looked for at every start inside
# each string, 61 starts per 64-byte chunk (the chunks overlap by three bytes so that
# the four bytes from each start are in the loads; bytes past a string's end load as
# 0). Short patterns (at most four bytes, no byte 0 nor >= 0x80) sit in "exact
# groups" of eight: per offset k, a 128-entry table (vpermi2b) gives the slots whose
# byte k the string's byte is (or that are shorter than k + 1); the AND over the four
# offsets has bit j set where slot j starts. A byte >= 0x80 (the tables see seven
# bits) keeps only the slots shorter than its offset. The bits are counted per slot
# and string by a bit transpose (gf2p8affineqb) and vpopcntb into byte counters.
# The other patterns (two bytes or more) share one filter of the same kind with eight
# buckets (a bucket's bit is set when each of its first four bytes is some member's:
# bytes folded to seven bits only add candidates) and every candidate is checked
# exactly, the pattern within the string. Per string, the types found are bits of
# their rank (priority, then index), as in the fast voter; only a tie on the top
# priority needs the votes. The matches found are exactly the automaton's: the plan
# is only built for tables that are the Aho-Corasick automaton of the texts it
# rebuilds from them (_dfa_texts checks every transition and output).

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    typedef struct {
        int G, has_long, ntypes, minlong;
        const uint8_t *etab;        /* G x 4 x 128: slot bits per offset and byte */
        const uint8_t *ewild;       /* G x 4: slots shorter than offset + 1 */
        const uint64_t *gtypes;     /* G x 256: slots present -> rank bits */
        const int64_t *slot_ptr;    /* G x 8 + 1: CSR of each slot's pattern ids */
        const int64_t *slot_id;
        const uint8_t *ttab;        /* 4 x 128: bucket bits per offset and byte */
        const int32_t *hstart;      /* 4097: texts by hash of their anchor's first two bytes, CSR */
        const int32_t *hlist;
        const int64_t *tlen;        /* per filtered text: length */
        const int64_t *tanch;       /* per filtered text: where its anchor (what the filter sees) starts */
        const uint8_t *tpad;        /* per filtered text: its first 32 bytes, 0-padded */
        const uint8_t *tbytes;      /* per filtered text: from tboff, its bytes */
        const int64_t *tboff;
        const int64_t *tid_ptr, *tid;    /* per filtered text: pattern ids, CSR */
        const int64_t *rank_of_pid;
        const uint64_t *same_prio;  /* per rank: the ranks of its priority */
        const int64_t *type_of_rank;
        int64_t *tv;                /* per rank, zero between strings */
    } offheap_svplan;

    #ifndef OFFHEAP_SV_AHEAD
    #define OFFHEAP_SV_AHEAD 16
    #endif
    #define OFFHEAP_SV_HASH(a, b) (((((uint32_t)(a) | (uint32_t)(b) << 8) * 0x9E37u) >> 4) & 4095)

    #if defined(__x86_64__) && defined(__GNUC__)
    #include <immintrin.h>
    #define OFFHEAP_SV_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi,avx512vbmi2,avx512bitalg,gfni,bmi,bmi2,lzcnt,popcnt")))

    static int offheap_sv_cpu(void) {
        __builtin_cpu_init();
        return __builtin_cpu_supports("gfni") && __builtin_cpu_supports("avx512bitalg");
    }

    /* n bytes at a and b the same. Inline, not memcmp: around a call every zmm register
       is caller-saved, and the compiler spilled the tables on the candidates' path
       (1.3 million candidates took 8 ms more). */
    static inline __attribute__((always_inline)) OFFHEAP_SV_TARGET int offheap_sv_same(
            const unsigned char *a, const unsigned char *b, int64_t n) {
        for (; n > 0; a += 32, b += 32, n -= 32) {
            __mmask32 m = n >= 32 ? ~(__mmask32)0 : (__mmask32)_bzhi_u32(~0U, (unsigned)n);
            if (_mm256_cmpneq_epi8_mask(_mm256_maskz_loadu_epi8(m, a), _mm256_maskz_loadu_epi8(m, b)))
                return 0;
        }
        return 1;
    }

    static inline __attribute__((always_inline)) OFFHEAP_SV_TARGET void offheap_sv_body(
            const offheap_svplan *P, const unsigned char *buf, const uint64_t *rel,
            const uint64_t *len, Py_ssize_t i0, Py_ssize_t ns, int64_t *cls, int64_t *counts,
            const int64_t *W, const int G, const int L) {
        const __mmask64 stepmask = (1ULL << 61) - 1;
        __m512i et[4][4][2], ttab[4][2], wild[4][4], gcnt[4], btr, tmat;
        uint8_t tix[64];
        int64_t *tv = P->tv;
        /* the filter's arrays in locals: the counts written per match could alias the
           plan's fields, which the compiler would then reload for every candidate */
        const int32_t *hstart = P->hstart, *hlist = P->hlist;
        const int64_t *tlen = P->tlen, *tanch = P->tanch, *tboff = P->tboff, *tid_ptr = P->tid_ptr, *tid = P->tid;
        const int64_t *rank_of_pid = P->rank_of_pid;
        const uint8_t *tpad = P->tpad, *tbytes = P->tbytes;
        const int64_t minlong = P->minlong;
        Py_ssize_t s;
        int g, k, j;
        for (j = 0; j < 8; j++)
            for (k = 0; k < 8; k++)
                tix[8 * j + k] = (uint8_t)(8 * k + j);
        btr = _mm512_loadu_si512(tix);
        tmat = _mm512_set1_epi64((long long)0x8040201008040201ULL);
        for (g = 0; g < G; g++) {
            for (k = 0; k < 4; k++) {
                et[g][k][0] = _mm512_loadu_si512(P->etab + (g * 4 + k) * 128);
                et[g][k][1] = _mm512_loadu_si512(P->etab + (g * 4 + k) * 128 + 64);
                wild[g][k] = _mm512_set1_epi8((char)P->ewild[g * 4 + k]);
            }
            gcnt[g] = _mm512_setzero_si512();
        }
        if (L)
            for (k = 0; k < 4; k++) {
                ttab[k][0] = _mm512_loadu_si512(P->ttab + k * 128);
                ttab[k][1] = _mm512_loadu_si512(P->ttab + k * 128 + 64);
            }
        for (s = i0; s < ns; s++) {
            const unsigned char *p0 = buf + rel[s], *p = p0;
            const int64_t slen = (int64_t)len[s], wt = OFFHEAP_WEIGHT(W, s);
            int64_t rem = slen;
            __m512i acc[4], wide[4], sc[4];
            if (s + OFFHEAP_SV_AHEAD < ns) {
                /* the strings are scattered over the window: fetch a later one's first
                   lines while this one is voted (a prefetch never faults) */
                const unsigned char *f = buf + rel[s + OFFHEAP_SV_AHEAD];
                __builtin_prefetch(f);
                __builtin_prefetch(f + 64);
            }
            uint64_t lpres = 0, presence;
            int nchunk = 0;
            int64_t c;
            for (g = 0; g < G; g++) {
                acc[g] = _mm512_setzero_si512();
                wide[g] = _mm512_setzero_si512();
            }
            while (rem > 0) {
                __m512i v[4];
                __mmask64 hi[4];
                for (k = 0; k < 4; k++) {
                    int64_t nk = rem - k;
                    nk = nk < 0 ? 0 : nk > 64 ? 64 : nk;
                    /* masked: no byte past the string is read (nor past the buffer) */
                    v[k] = _mm512_maskz_loadu_epi8(_bzhi_u64(~0ULL, (unsigned)nk), p + k);
                    hi[k] = _mm512_movepi8_mask(v[k]);
                }
                for (g = 0; g < G; g++) {
                    __m512i t = _mm512_maskz_permutex2var_epi8(stepmask & ~hi[0], et[g][0][0], v[0], et[g][0][1]);
                    for (k = 1; k < 4; k++)
                        t = _mm512_and_si512(t, _mm512_mask_mov_epi8(
                            _mm512_permutex2var_epi8(et[g][k][0], v[k], et[g][k][1]), hi[k], wild[g][k]));
                    acc[g] = _mm512_add_epi8(acc[g], _mm512_popcnt_epi8(
                        _mm512_gf2p8affine_epi64_epi8(tmat, t, 0)));
                }
                if (L) {
                    __m512i t = _mm512_maskz_permutex2var_epi8(stepmask, ttab[0][0], v[0], ttab[0][1]);
                    uint64_t cand;
                    t = _mm512_ternarylogic_epi64(t, _mm512_permutex2var_epi8(ttab[1][0], v[1], ttab[1][1]),
                                                  _mm512_permutex2var_epi8(ttab[2][0], v[2], ttab[2][1]), 0x80);
                    t = _mm512_and_si512(t, _mm512_permutex2var_epi8(ttab[3][0], v[3], ttab[3][1]));
                    cand = _mm512_test_epi8_mask(t, t);
                    while (__builtin_expect(cand != 0, 0)) {
                        /* i: where an anchor may be; at: there, in the string */
                        int i = __builtin_ctzll(cand);
                        int64_t avail = rem - i, at = slen - rem + i;
                        cand &= cand - 1;
                        if (avail >= minlong) {
                            unsigned h = OFFHEAP_SV_HASH(p[i], p[i + 1]);
                            int q, qend = hstart[h + 1];
                            for (q = hstart[h]; q < qend; q++) {
                                int x = hlist[q];
                                int64_t tl = tlen[x], st = at - tanch[x], left = slen - st;
                                if (st < 0 || tl > left)        /* the text would not fit in the string */
                                    continue;
                                __mmask32 lm = left >= 32 ? ~(__mmask32)0 : (__mmask32)_bzhi_u32(~0U, (unsigned)left);
                                __m256i w = _mm256_maskz_loadu_epi8(lm, p0 + st);
                                uint32_t need = tl >= 32 ? ~0U : (1U << tl) - 1;
                                uint32_t eq = _mm256_cmpeq_epi8_mask(w, _mm256_loadu_si256((const __m256i *)(tpad + 32 * (int64_t)x)));
                                if ((eq & need) == need
                                        && (tl <= 32 || offheap_sv_same(p0 + st + 32, tbytes + tboff[x] + 32, tl - 32))) {
                                    int64_t e, eend = tid_ptr[x + 1];
                                    for (e = tid_ptr[x]; e < eend; e++) {
                                        int64_t pid = tid[e], r = rank_of_pid[pid];
                                        counts[pid] += wt;
                                        tv[r]++;
                                        lpres |= 1ULL << r;
                                    }
                                }
                            }
                        }
                    }
                }
                p += 61;
                rem -= 61;
                if (__builtin_expect(++nchunk == 31, 0)) {   /* byte counters: at most 8 a chunk */
                    nchunk = 0;
                    for (g = 0; g < G; g++) {
                        wide[g] = _mm512_add_epi64(wide[g], _mm512_sad_epu8(
                            _mm512_permutexvar_epi8(btr, acc[g]), _mm512_setzero_si512()));
                        acc[g] = _mm512_setzero_si512();
                    }
                }
            }
            presence = lpres;
            for (g = 0; g < G; g++) {
                /* qword j: slot j's matches in this string */
                sc[g] = _mm512_add_epi64(wide[g], _mm512_sad_epu8(
                    _mm512_permutexvar_epi8(btr, acc[g]), _mm512_setzero_si512()));
                if (wt == 1) {
                    gcnt[g] = _mm512_add_epi64(gcnt[g], sc[g]);
                } else {            /* a string standing for wt copies */
                    uint64_t sv[8];
                    _mm512_storeu_si512(sv, sc[g]);
                    for (j = 0; j < 8; j++)
                        sv[j] *= (uint64_t)wt;
                    gcnt[g] = _mm512_add_epi64(gcnt[g], _mm512_loadu_si512(sv));
                }
                presence |= P->gtypes[g * 256 + _mm512_test_epi64_mask(sc[g], sc[g])];
            }
            c = -1;
            if (presence) {
                int r = __builtin_ctzll(presence);
                uint64_t tie = presence & P->same_prio[r];
                if (__builtin_expect((tie & (tie - 1)) != 0, 0)) {
                    /* the top priority is shared: most votes, then the lower index
                       (ranks of one priority are in type order) */
                    int64_t votes[64];
                    int best = r;
                    uint64_t m = tie & (tie - 1);
                    for (k = 0; k < P->ntypes; k++)
                        votes[k] = tv[k];
                    for (g = 0; g < G; g++) {
                        uint64_t sv[8];
                        _mm512_storeu_si512(sv, sc[g]);
                        for (j = 0; j < 8; j++) {
                            int64_t e;
                            for (e = P->slot_ptr[g * 8 + j]; e < P->slot_ptr[g * 8 + j + 1]; e++)
                                votes[P->rank_of_pid[P->slot_id[e]]] += (int64_t)sv[j];
                        }
                    }
                    while (m) {
                        int q = __builtin_ctzll(m);
                        m &= m - 1;
                        if (votes[q] > votes[best])
                            best = q;
                    }
                    r = best;
                }
                c = P->type_of_rank[r];
                while (lpres) {
                    tv[__builtin_ctzll(lpres)] = 0;
                    lpres &= lpres - 1;
                }
            }
            cls[s] = c;
        }
        for (g = 0; g < G; g++) {
            uint64_t sv[8];
            _mm512_storeu_si512(sv, gcnt[g]);
            for (j = 0; j < 8; j++) {
                int64_t e;
                for (e = P->slot_ptr[g * 8 + j]; e < P->slot_ptr[g * 8 + j + 1]; e++)
                    counts[P->slot_id[e]] += (int64_t)sv[j];
            }
        }
    }

    #define OFFHEAP_SV_KERNEL(G_, L_) \
        static __attribute__((noinline)) OFFHEAP_SV_TARGET void offheap_sv_##G_##_##L_( \
                const offheap_svplan *P, const unsigned char *buf, const uint64_t *rel, \
                const uint64_t *len, Py_ssize_t i0, Py_ssize_t ns, int64_t *cls, int64_t *counts, \
                const int64_t *W) { \
            offheap_sv_body(P, buf, rel, len, i0, ns, cls, counts, W, G_, L_); \
        }
    OFFHEAP_SV_KERNEL(0, 1) OFFHEAP_SV_KERNEL(1, 0) OFFHEAP_SV_KERNEL(1, 1)
    OFFHEAP_SV_KERNEL(2, 0) OFFHEAP_SV_KERNEL(2, 1) OFFHEAP_SV_KERNEL(3, 0) OFFHEAP_SV_KERNEL(3, 1)
    OFFHEAP_SV_KERNEL(4, 0) OFFHEAP_SV_KERNEL(4, 1)

    /* Vote strings [i0, ns) (buf + rel[i], len[i] bytes each) into cls, their matches
       per pattern added to counts. Returns 0 when the plan has no kernel (nothing done). */
    static int offheap_svote_strings(const offheap_svplan *P, const unsigned char *buf,
                                     const uint64_t *rel, const uint64_t *len, Py_ssize_t i0,
                                     Py_ssize_t ns, int64_t *cls, int64_t *counts, const int64_t *W) {
        switch (P->G * 2 + (P->has_long != 0)) {
        case 1: offheap_sv_0_1(P, buf, rel, len, i0, ns, cls, counts, W); return 1;
        case 2: offheap_sv_1_0(P, buf, rel, len, i0, ns, cls, counts, W); return 1;
        case 3: offheap_sv_1_1(P, buf, rel, len, i0, ns, cls, counts, W); return 1;
        case 4: offheap_sv_2_0(P, buf, rel, len, i0, ns, cls, counts, W); return 1;
        case 5: offheap_sv_2_1(P, buf, rel, len, i0, ns, cls, counts, W); return 1;
        case 6: offheap_sv_3_0(P, buf, rel, len, i0, ns, cls, counts, W); return 1;
        case 7: offheap_sv_3_1(P, buf, rel, len, i0, ns, cls, counts, W); return 1;
        case 8: offheap_sv_4_0(P, buf, rel, len, i0, ns, cls, counts, W); return 1;
        case 9: offheap_sv_4_1(P, buf, rel, len, i0, ns, cls, counts, W); return 1;
        }
        return 0;
    }
    #else
    static int offheap_sv_cpu(void) { return 0; }
    static int offheap_svote_strings(const offheap_svplan *P, const unsigned char *buf,
                                     const uint64_t *rel, const uint64_t *len, Py_ssize_t i0,
                                     Py_ssize_t ns, int64_t *cls, int64_t *counts, const int64_t *W) {
        return 0;
    }
    #endif
    """
    ctypedef struct offheap_svplan:
        int G, has_long, ntypes, minlong
        const uint8_t* etab
        const uint8_t* ewild
        const uint64_t* gtypes
        const int64_t* slot_ptr
        const int64_t* slot_id
        const uint8_t* ttab
        const int32_t* hstart
        const int32_t* hlist
        const int64_t* tlen
        const int64_t* tanch
        const uint8_t* tpad
        const uint8_t* tbytes
        const int64_t* tboff
        const int64_t* tid_ptr
        const int64_t* tid
        const int64_t* rank_of_pid
        const uint64_t* same_prio
        const int64_t* type_of_rank
        int64_t* tv
    int offheap_sv_cpu() noexcept nogil
    int offheap_svote_strings(const offheap_svplan* P, const unsigned char* buf, const uint64_t* rel,
                              const uint64_t* len, Py_ssize_t i0, Py_ssize_t ns, int64_t* cls,
                              int64_t* counts, const int64_t* W) noexcept nogil


_sv_cpu = offheap_sv_cpu()
# Past ~100 texts the filter's eight buckets let too many candidates through: 1,000
# patterns took 114 ms per 64 MiB here, where the automaton voter takes 47.
_SV_MAXTEXT = 128


_SV_SAMPLE = 1 << 18    # bytes of string text the plan is tuned on (1 MiB cost 10 ms more, no faster here)


def _svote_sample(const unsigned char[::1] buf, const uint64_t[::1] rel, const uint64_t[::1] lens,
                  Py_ssize_t i0, Py_ssize_t ns):
    """The first ~1 MiB of the strings [i0, ns) (buf + rel[i], lens[i] bytes; already
    checked to be inside buf), each followed by a 0 byte."""
    cdef Py_ssize_t i = i0, total = 0
    parts = []
    while i < ns and total < _SV_SAMPLE:
        parts.append(bytes(buf[rel[i]:rel[i] + lens[i]]))
        total += <Py_ssize_t>lens[i]
        i += 1
    parts.append(b"")
    return b"\0".join(parts)


def _svote_sample_stats(sample, texts, wanted):
    """Byte frequencies (seven bits, as the tables see them; smoothed) and the
    occurrences in the sample of each text ``wanted`` says (0 for the others, or no
    sample)."""
    pfreq = [0] * len(texts)
    if not sample:
        return _np.full(128, 1.0 / 128), pfreq
    a = _np.frombuffer(sample, _np.uint8)
    hist = _np.bincount(a & 127, minlength=128).astype(_np.float64)
    hist[0] -= sample.count(b"\0")     # the separators
    hist[0] = max(hist[0], 0.0)
    freq = (hist + 0.01) / (hist.sum() + 1.28)
    for i, x in enumerate(texts):
        if wanted[i]:
            pfreq[i] = sample.count(x)  # without overlaps: enough to rank them
    return freq, pfreq


def _svote_anchors(texts, sample, freq):
    """Where in each filtered text the filter looks, its anchor: the four bytes (all
    of a shorter text) least frequent in ``sample``, as each place the filter lets
    through is a candidate to check. JSON pieces share their first bytes
    ('"event":"unread_count"' begins like every event): anchored at their rarest
    four, bench_match's ten patterns gave 0.94 million candidates per 64 MiB instead
    of 1.29. Four-byte windows are counted by a hash (collisions only overcount);
    ties go to the rarer bytes, then to the first."""
    counts = None
    if sample and len(sample) >= 4:
        # every window, as little-endian uint32 read at each of the four alignments
        v = _np.concatenate([_np.frombuffer(sample, "<u4", (len(sample) - r) // 4, r) for r in range(4)])
        counts = _np.bincount((v * _np.uint32(_SV_GRAM_MUL)) >> _np.uint32(16), minlength=1 << 16).tolist()
    f = [float(x) for x in freq]
    out = []
    for x in texts:
        best = None
        for d in range(max(1, len(x) - 3)):
            w = x[d:d + 4]
            seen = 0 if counts is None else counts[(int.from_bytes(w, "little") * _SV_GRAM_MUL & 0xFFFFFFFF) >> 16]
            p = 1.0
            for b in w:
                p *= f[b & 127]
            if best is None or (seen, p, d) < best:
                best = (seen, p, d)
        out.append(best[2])
    return out


_SV_GRAM_MUL = 0x9E3779B1


# Passes of single moves after the greedy assignment: the plan is built on a dump's
# first window, in its time; two passes keep most of the gain (20 took 17 ms more).
_SV_MOVES = 2


def _svote_buckets(texts, freq):
    """A bucket (0-7) for each filtered text (``texts``: their anchors, the four bytes
    or fewer the filter sees): the filter lets a position through when, at each of
    the four offsets, its byte is one of some bucket's members' bytes there (any byte
    past a member's end), so a bucket's false candidates per position
    are about the product over offsets of its members' bytes' frequencies. Greedy,
    most selective texts last, then single moves while the sum goes down (as the
    prototype in proto_vote/vote2.c)."""
    nl = len(texts)
    if nl == 0:
        return []
    f = [float(v) for v in freq]
    cap = -(-nl // 8) + 3
    seen = [[{} for _ in range(4)] for _ in range(8)]   # per bucket, offset: byte -> members
    wild = [[0] * 4 for _ in range(8)]
    mass = [[0.0] * 4 for _ in range(8)]
    cnt = [0] * 8
    keys = [[x[k] & 127 if k < len(x) else -1 for k in range(4)] for x in texts]

    def cost(b, q=-1, sign=0):
        # bucket b's cost, with text q added (sign 1) or taken out (sign -1)
        c = 1.0
        for k in range(4):
            w = wild[b][k]
            m = mass[b][k]
            if q >= 0:
                x = keys[q][k]
                if x < 0:
                    w += sign
                else:
                    n = seen[b][k].get(x, 0)
                    if sign > 0 and n == 0:
                        m += f[x]
                    elif sign < 0 and n == 1:
                        m -= f[x]
            if w == 0:
                c *= m
        return c if cnt[b] + sign > 0 else 0.0

    def put(b, q, sign):
        for k in range(4):
            x = keys[q][k]
            if x < 0:
                wild[b][k] += sign
            else:
                n = seen[b][k].get(x, 0) + sign
                if n:
                    seen[b][k][x] = n
                else:
                    del seen[b][k][x]
                if n == (1 if sign > 0 else 0):
                    mass[b][k] += f[x] if sign > 0 else -f[x]
        cnt[b] += sign

    def alone(q):
        c = 1.0
        for k in range(4):
            if keys[q][k] >= 0:
                c *= f[keys[q][k]]
        return c

    asg = [-1] * nl
    for q in sorted(range(nl), key=lambda q: (-alone(q), q)):
        best, bestd = -1, 0.0
        for b in range(8):
            if cnt[b] < cap:
                d = cost(b, q, 1) - cost(b)
                if best < 0 or d < bestd:
                    best, bestd = b, d
        asg[q] = best
        put(best, q, 1)
    for _ in range(_SV_MOVES):
        improved = False
        for q in range(nl):
            a = asg[q]
            for b in range(8):
                if b == a or cnt[b] >= cap:
                    continue
                d = cost(a, q, -1) + cost(b, q, 1) - cost(a) - cost(b)
                if d < -1e-15:
                    put(a, q, -1)
                    put(b, q, 1)
                    asg[q] = a = b
                    improved = True
        if not improved:
            break
    return asg


def _svote_plan(trans, classes, int ncls, out_ptr, out_ids, pat_type, priority, sample=None):
    """The arrays offheap_svote_strings runs on, or None when it cannot find these
    patterns exactly or fast (not an automaton of texts, more than 64 types or 128 texts, a
    1-byte text with byte 0 or >= 0x80, more than 32 1-byte texts).

    ``sample`` (bytes: some strings, each followed by a 0 byte) tunes the plan to
    the data: the short texts most frequent in it take the exact slots, and the
    filter's buckets are chosen for the fewest false candidates under its byte
    frequencies. Any plan finds exactly the same matches: only the speed depends
    on the sample."""
    prio = _np.asarray(priority, _np.int64)
    ptype = _np.asarray(pat_type, _np.int64)
    ntypes = prio.shape[0]
    if not 1 <= ntypes <= 64 or ptype.shape[0] == 0:
        return None
    texts = _dfa_texts_cached(trans, classes, ncls, out_ptr, out_ids)
    if texts is None and not _signs_agree(trans, ncls, out_ptr):
        raise ValueError("trans sign bits disagree with out_ptr")     # as _fast_tables
    if texts is None or len(texts) > _SV_MAXTEXT or sum(len(i) for _, i in texts) != ptype.shape[0]:
        return None
    rank_type, rank_of, prio_rank = _ranks(prio)
    rank_of_pid = rank_of[ptype]
    same_prio = _np.zeros(ntypes, _np.uint64)
    for r in range(ntypes):
        same_prio[r] = sum(1 << q for q in range(ntypes) if prio_rank[q] == prio_rank[r])
    ok = [len(x) <= 4 and all(1 <= b < 0x80 for b in x) for x, _ in texts]
    ones = [i for i, (x, _) in enumerate(texts) if len(x) == 1]
    if any(not ok[i] for i in ones) or len(ones) > 32:
        return None
    freq, pfreq = _svote_sample_stats(sample, [x for x, _ in texts], ok)
    # exact slots: the 1-byte texts (the filter needs two bytes), then the short texts
    # most frequent in the sample (in the filter each occurrence is a candidate to
    # check), then the shortest (a short text in the filter leaves its bucket's
    # later offsets open)
    short = sorted((i for i in range(len(texts)) if ok[i]),
                   key=lambda i: (len(texts[i][0]) > 1, -pfreq[i], len(texts[i][0]), texts[i][0]))
    G = max(-(-len(ones) // 8), min(2, -(-len(short) // 8)))
    exact = short[:8 * G]
    G = -(-len(exact) // 8)
    rest = sorted(set(range(len(texts))) - set(exact), key=lambda i: texts[i][0])
    anchor = _svote_anchors([texts[i][0] for i in rest], sample, freq)
    bucket = _svote_buckets([texts[i][0][d:d + 4] for i, d in zip(rest, anchor)], freq)
    etab = _np.zeros((max(G, 1), 4, 128), _np.uint8)
    ewild = _np.zeros((max(G, 1), 4), _np.uint8)
    gtypes = _np.zeros((max(G, 1), 256), _np.uint64)
    slot_ptr = [0]
    slot_id = []
    slot_bits = _np.zeros((max(G, 1), 8), _np.uint64)
    for n, i in enumerate(exact):
        g, j = divmod(n, 8)
        x, ids = texts[i]
        for k in range(4):
            if k < len(x):
                etab[g, k, x[k]] |= 1 << j
            else:
                etab[g, k, :] |= 1 << j
                ewild[g, k] |= 1 << j
        slot_bits[g, j] = sum(1 << r for r in {int(rank_of_pid[p]) for p in ids})   # OR: ranks repeat
    for g in range(G):
        for j in range(8):
            n = g * 8 + j
            if n < len(exact):
                slot_id.extend(texts[exact[n]][1])
            slot_ptr.append(len(slot_id))
        for m in range(256):
            gtypes[g, m] = _np.bitwise_or.reduce([slot_bits[g, j] for j in range(8) if m >> j & 1] or [_np.uint64(0)])
    # the filtered texts in their eight buckets
    nl = len(rest)
    ttab = _np.zeros((4, 128), _np.uint8)
    tlen = _np.zeros(max(nl, 1), _np.int64)
    tanch = _np.zeros(max(nl, 1), _np.int64)
    tpad = _np.zeros((max(nl, 1), 32), _np.uint8)
    tboff = _np.zeros(max(nl, 1), _np.int64)
    tid_ptr = [0]
    tid = []
    blob = bytearray()
    hcount = _np.zeros(4097, _np.int32)
    hkey = []
    for q, i in enumerate(rest):
        x, ids = texts[i]
        b, d = bucket[q], anchor[q]
        for k in range(4):
            if d + k < len(x):
                ttab[k, x[d + k] & 127] |= 1 << b
            else:
                ttab[k, :] |= 1 << b
        tlen[q] = len(x)
        tanch[q] = d
        tpad[q, :min(32, len(x))] = _np.frombuffer(x[:32], _np.uint8)
        tboff[q] = len(blob)
        blob += x
        tid.extend(ids)
        tid_ptr.append(len(tid))
        h = (((x[d] | x[d + 1] << 8) * 0x9E37) >> 4) & 4095
        hkey.append(h)
        hcount[h + 1] += 1
    hstart = _np.cumsum(hcount).astype(_np.int32)
    hlist = _np.zeros(max(nl, 1), _np.int32)
    fill = hstart[:-1].copy()
    for q, h in enumerate(hkey):
        hlist[fill[h]] = q
        fill[h] += 1
    a64 = lambda v: _np.ascontiguousarray(_np.asarray(v, _np.int64).reshape(-1)) if len(v) else _np.zeros(1, _np.int64)
    # the fewest bytes from an anchor to its text's end (at least two: the hash reads them)
    minlong = int(min((len(texts[i][0]) - d for i, d in zip(rest, anchor)), default=2))
    return dict(G=G, has_long=int(nl > 0), ntypes=ntypes, minlong=minlong,
                etab=etab, ewild=ewild, gtypes=gtypes, slot_ptr=a64(slot_ptr), slot_id=a64(slot_id),
                ttab=ttab, hstart=hstart, hlist=hlist, tlen=tlen, tanch=tanch, tpad=tpad,
                tbytes=_np.frombuffer(bytes(blob) + b"\0", _np.uint8), tboff=tboff,
                tid_ptr=a64(tid_ptr), tid=a64(tid), rank_of_pid=rank_of_pid,
                same_prio=same_prio, type_of_rank=rank_type,
                exact=len(exact), filtered=nl)


# The last plan (see _weak_hit), and whether it was tuned on a sample.
_SV_CACHE = [None]


# A plan is tuned on the strings of the call that builds it (``sample``: a function
# giving them), so a dump's later windows run on the first one's plan; a plan built
# without strings (_vote_plan) is rebuilt by the first call that has some.
def _svote_plan_cached(trans, classes, int ncls, out_ptr, out_ids, pat_type, priority, sample=None):
    arrays = (trans, classes, out_ptr, out_ids)
    small = (ncls, bytes(_np.asarray(pat_type)), bytes(_np.asarray(priority)))
    hit = _weak_hit(_SV_CACHE, arrays, small)
    if hit is not None and (hit[3] or sample is None or hit[2] is None):
        return hit[2]
    result = _svote_plan(trans, classes, ncls, out_ptr, out_ids, pat_type, priority,
                         sample() if sample is not None else None)
    _weak_keep(_SV_CACHE, arrays, small, result, sample is not None)
    return result


def _vote_plan(trans, classes, int ncls, out_ptr, out_ids, pat_type, priority):
    """What vote_strings runs for these tables over whole strings: None when the
    AVX-512 voter is off (or cannot find the patterns), else ``{'groups', 'exact',
    'filtered'}``: exact groups, patterns in them, patterns the filter finds."""
    if not (offheap_simd and _sv_cpu):
        return None
    plan = _svote_plan_cached(trans, classes, ncls, out_ptr, out_ids, pat_type, priority)
    if plan is None:
        return None
    return {"groups": plan["G"], "exact": plan["exact"], "filtered": plan["filtered"]}


cdef int _svote_run(dict plan, const unsigned char *bp, const uint64_t *rel, const uint64_t *lens,
                    Py_ssize_t i0, Py_ssize_t ns, int64_t *cls, int64_t *counts, const int64_t *W) except -1:
    cdef offheap_svplan P
    cdef const uint8_t[:, :, ::1] etab = plan["etab"]
    cdef const uint8_t[:, ::1] ewild = plan["ewild"], ttab = plan["ttab"], tpad = plan["tpad"]
    cdef const uint64_t[:, ::1] gtypes = plan["gtypes"]
    cdef const int64_t[::1] slot_ptr = plan["slot_ptr"], slot_id = plan["slot_id"], tlen = plan["tlen"]
    cdef const int64_t[::1] tanch = plan["tanch"]
    cdef const int64_t[::1] tboff = plan["tboff"], tid_ptr = plan["tid_ptr"], tid = plan["tid"]
    cdef const int64_t[::1] rop = plan["rank_of_pid"], tor = plan["type_of_rank"]
    cdef const uint64_t[::1] same = plan["same_prio"]
    cdef const int32_t[::1] hstart = plan["hstart"], hlist = plan["hlist"]
    cdef const uint8_t[::1] tbytes = plan["tbytes"]
    tv = _np.zeros(64, _np.int64)
    cdef int64_t[::1] tvv = tv
    cdef int done
    P.G = plan["G"]
    P.has_long = plan["has_long"]
    P.ntypes = plan["ntypes"]
    P.minlong = plan["minlong"]
    P.etab = &etab[0, 0, 0]
    P.ewild = &ewild[0, 0]
    P.gtypes = &gtypes[0, 0]
    P.slot_ptr = &slot_ptr[0]
    P.slot_id = &slot_id[0]
    P.ttab = &ttab[0, 0]
    P.hstart = &hstart[0]
    P.hlist = &hlist[0]
    P.tlen = &tlen[0]
    P.tanch = &tanch[0]
    P.tpad = &tpad[0, 0]
    P.tbytes = &tbytes[0]
    P.tboff = &tboff[0]
    P.tid_ptr = &tid_ptr[0]
    P.tid = &tid[0]
    P.rank_of_pid = &rop[0]
    P.same_prio = &same[0]
    P.type_of_rank = &tor[0]
    P.tv = &tvv[0]
    with nogil:
        done = offheap_svote_strings(&P, bp, rel, lens, i0, ns, cls, counts, W)
    return done


@cython.boundscheck(False)
@cython.wraparound(False)
def vote_strings(const unsigned char[::1] buf, uint64_t base, Py_ssize_t end,
                 const uint64_t[::1] str_off, const uint64_t[::1] str_len,
                 const int32_t[::1] trans, const int32_t[::1] classes, int ncls,
                 const int64_t[::1] out_ptr, const int32_t[::1] out_ids,
                 const int64_t[::1] pat_type, const int64_t[::1] priority,
                 int64_t[::1] pat_counts, int64_t[::1] carry,
                 bint open_run=False, uint64_t open_start=0, const int64_t[::1] weights=None):
    """Type of each string (-1: no match in it), as ``string_types`` decides it, from
    the automaton run over the strings' bytes (tables of ``build_tables``).

    ``buf`` holds the window ``[base, base + end)``; the strings must be sorted, end
    inside it, and start inside it too, except a first string that continues the run
    carried from the last window. ``pat_counts`` (one per pattern) gets the matches
    inside the strings added. ``carry`` (int64, 3 + one per pattern) holds the run
    still open at the last window's end: [0] 1 if any, [1] its start, [2] the automaton
    state, then its matches per pattern so far; with ``open_run`` the run that is open
    at this window's end (from ``open_start``; the string kernel's state says) is
    stepped and saved there for the next call, else the carry is cleared. A carried
    run that did not become a string (too short) is dropped with its matches.

    ``weights`` (int64 >= 0, one per string) makes each match of string i count
    ``weights[i]`` times in ``pat_counts``: a string standing for that many copies of
    itself (the types are those of the string alone).
    """
    cdef Py_ssize_t ns = str_off.shape[0], npat = pat_type.shape[0], ntypes = priority.shape[0]
    cdef Py_ssize_t nbytes = buf.shape[0], i, k
    cdef const int64_t *wp = NULL
    if str_len.shape[0] != ns:
        raise ValueError("array lengths differ")
    if weights is not None:
        if weights.shape[0] != ns:
            raise ValueError("weights must hold one weight per string")
        for i in range(ns):
            if weights[i] < 0:
                raise ValueError("weights must be >= 0")
        if ns:
            wp = &weights[0]
    if not 0 <= end <= nbytes:
        raise ValueError(f"end {end} is outside the buffer of {nbytes} bytes")
    if pat_counts.shape[0] != npat or carry.shape[0] != npat + 3:
        raise ValueError("pat_counts must hold one count per pattern, carry three more")
    _ac_check_tables(trans, classes, ncls, out_ptr, out_ids, _np.zeros(npat, _np.int32),
                     _np.zeros(8192, _np.uint8), 0)
    for i in range(npat):
        if not 0 <= pat_type[i] < ntypes:
            raise ValueError("pattern type out of range")
    if carry[0] and not (0 <= carry[2] < trans.shape[0] and carry[2] % ncls == 0):
        raise ValueError("carried automaton state out of range")
    # the strings: sorted, disjoint, inside the window (the first may continue the carry)
    cdef uint64_t wend = base + <uint64_t>end, prev = 0
    cdef Py_ssize_t i0 = 0
    cdef bint continues = ns > 0 and str_off[0] < base
    if continues and not (carry[0] and <uint64_t>carry[1] == str_off[0]):
        raise ValueError("a string starts before the window but no run was carried for it")
    for i in range(ns):
        if str_len[i] == 0 or str_off[i] + str_len[i] > wend or str_off[i] + str_len[i] < str_off[i] \
                or (i and str_off[i] < prev) or (i and str_off[i] < base):
            raise ValueError(f"string {i} is empty, unsorted or outside the window")
        prev = str_off[i] + str_len[i]
    if open_run and (open_start > wend or (open_start < base and not (
            carry[0] and <uint64_t>carry[1] == open_start)) or (ns and open_start < prev)):
        raise ValueError("the open run must start after the strings, inside the window or carried")

    shift, inv = _ac_divisor(ncls)
    cdef offheap_vote V
    V.trans = &trans[0]
    V.classes = &classes[0]
    V.out_ptr = &out_ptr[0]
    V.out_ids = &out_ids[0] if out_ids.shape[0] else NULL
    V.pat_type = &pat_type[0] if npat else NULL
    V.priority = &priority[0] if ntypes else NULL
    V.shift = shift
    V.inv = inv
    V.ntypes = max(ntypes, 1)
    for k in range(4):
        V.ntouched[k] = 0
    votes = _np.zeros(4 * V.ntypes, _np.int64)
    touched = _np.zeros(4 * V.ntypes, _np.int32)
    counts = _np.zeros(max(npat, 1), _np.int64)
    # every string's class is written below (the AVX-512 voter writes each of its own)
    cls = _np.empty(ns, dtype=_np.int64)
    stage = _np.empty(8 * OFFHEAP_VOTE_BLOCK, dtype=_np.uint64)
    cdef int64_t[::1] vv = votes, cv = counts, cl = cls
    cdef int32_t[::1] tv = touched
    cdef const uint64_t[::1] rv
    cdef const uint64_t[::1] lv
    cdef const uint64_t[::1] srv
    V.votes = &vv[0]
    V.touched = &tv[0]
    V.counts = &cv[0]
    V.W = wp
    for k in range(4):
        V.wk[k] = 1
    cdef const unsigned char *bp = &buf[0] if nbytes else <const unsigned char *>_EMPTY
    cdef Py_ssize_t state
    cdef uint64_t *sp = <uint64_t *>_np_data(stage)

    if continues:
        # the carried run became string 0: its votes so far, then the rest of it
        V.wk[0] = wp[0] if wp != NULL else 1
        _vote_carry_in(&V, carry)
        state = carry[2]
        with nogil:
            offheap_vote_run1(&V, 0, bp, <Py_ssize_t>(str_off[0] + str_len[0] - base), &state)
            cl[0] = offheap_vote_close(&V, 0)
        V.wk[0] = 1
        i0 = 1
    cdef offheap_fvote F
    cdef const int32_t[::1] t2v
    cdef const uint64_t[::1] tmv
    cdef int64_t[::1] hv
    cdef const int64_t[::1] rtv, rpv, svp, svt, svc
    cdef int64_t[::1] tvv
    # whole strings: the AVX-512 voter when it finds these patterns exactly. It reads
    # strings [i0, ns) only, at their offsets in buf (str_off itself when base is 0).
    cdef int sv_done = 0
    if ns > i0 and ntypes <= 64 and offheap_simd and _sv_cpu:
        srel = str_off if base == 0 else _np.subtract(str_off, _np.uint64(base))
        srv = srel
        splan = _svote_plan_cached(trans, classes, ncls, out_ptr, out_ids, pat_type, priority,
                                   _functools.partial(_svote_sample, buf, srel, str_len, i0, ns))
        if splan is not None:
            sv_done = _svote_run(splan, bp, &srv[0], &str_len[0], i0, ns, &cl[0], &cv[0], wp)
    if not sv_done and ns > i0:
        cls[i0:] = -1
        # entries past the last string: a lane moving on from its last string reads
        # the first, and the fast voter prefetches up to three strings ahead
        rel = _np.zeros(ns + 4, _np.uint64)
        rel[:ns] = _np.asarray(str_off) - _np.uint64(base)
        if continues:
            rel[0] = 0
        lens = _np.zeros(ns + 4, _np.uint64)
        lens[:ns] = str_len
        rv = rel
        lv = lens
    if sv_done:
        pass
    elif ns > i0 and ntypes <= 64:
        trans2, thr, tmask, rank_type, rank_prio, new_of, (sv_ptr, sv_type, sv_count) = _fast_tables_cached(
            trans, ncls, out_ptr, out_ids, pat_type, priority)
        hist = _np.zeros(len(tmask), _np.int64)
        tvotes = _np.zeros(max(ntypes, 1), _np.int64)
        t2v, tmv, hv, rtv, rpv = trans2, tmask, hist, rank_type, rank_prio
        svp, svt, svc, tvv = sv_ptr, sv_type, _np.ascontiguousarray(sv_count), tvotes
        F.sv_ptr = &svp[0]
        F.sv_type = &svt[0] if svt.shape[0] else NULL
        F.sv_count = &svc[0] if svc.shape[0] else NULL
        F.tvotes = &tvv[0]
        F.trans = &t2v[0]
        F.classes = &classes[0]
        F.thr = thr
        F.shift = shift
        F.inv = inv
        F.tmask = &tmv[0]
        F.hist = &hv[0]
        F.rank_type = &rtv[0]
        F.rank_prio = &rpv[0]
        F.V = &V
        F.W = wp
        with nogil:
            offheap_fvote_strings(&F, bp, &rv[0], &lv[0], i0, ns, &cl[0], <uint32_t *>sp)
        # per-pattern counts from the states' counts
        op = _np.asarray(out_ptr)
        per_out = _np.repeat(hist[new_of], _np.diff(op))
        if len(per_out):
            counts += _np.bincount(_np.asarray(out_ids), weights=per_out,
                                   minlength=len(counts)).astype(_np.int64)[:len(counts)]
    elif ns > i0:
        with nogil:
            offheap_vote_strings(&V, bp, &rv[0], &lv[0], i0, ns, &cl[0], sp)
    for k in range(npat):
        pat_counts[k] += cv[k]
    if open_run:
        # step the open run to the window's end; its matches wait in the carry
        cv[:] = 0
        if open_start < base:
            for k in range(npat):
                cv[k] = carry[3 + k]
            state = carry[2]
            i = 0
        else:
            state = 0
            i = <Py_ssize_t>(open_start - base)
        V.wk[0] = 1         # not a string yet: its matches count once
        with nogil:
            offheap_vote_run1(&V, 0, bp + i, end - i, &state)
        offheap_vote_close(&V, 0)
        carry[0] = 1
        carry[1] = <int64_t>open_start
        carry[2] = state
        for k in range(npat):
            carry[3 + k] = cv[k]
    else:
        carry[:] = 0
    return cls


cdef void _vote_carry_in(offheap_vote *V, int64_t[::1] carry):
    # lane 0 takes the carried run's matches: counted, and voted for by type
    cdef Py_ssize_t k, npat = carry.shape[0] - 3
    cdef int64_t c, t
    for k in range(npat):
        c = carry[3 + k]
        if c:
            V.counts[k] += c * V.wk[0]
            t = V.pat_type[k]
            if V.votes[t] == 0:
                V.touched[V.ntouched[0]] = <int32_t>t
                V.ntouched[0] += 1
            V.votes[t] += c


# The last tables renumbered (see _weak_hit): a dump's windows reuse them (16 ms per
# window for 1,000 patterns). They are consistent in themselves, so even arrays
# changed in place could not make the kernel read outside them.
_FAST_CACHE = [None]


def _fast_tables_cached(trans, int ncls, out_ptr, out_ids, pat_type, priority):
    arrays = (trans, out_ptr, out_ids)
    small = (ncls, bytes(_np.asarray(pat_type)), bytes(_np.asarray(priority)))
    hit = _weak_hit(_FAST_CACHE, arrays, small)
    if hit is not None:
        return hit[2]
    result = _fast_tables(trans, ncls, out_ptr, out_ids, pat_type, priority)
    _weak_keep(_FAST_CACHE, arrays, small, result)
    return result


def _ranks(priority):
    """The types by rank (priority, highest first, then index), as the voters keep a
    string's types as rank bits: rank -> type, type -> rank, rank -> priority."""
    prio = _np.asarray(priority, _np.int64)
    rank_type = _np.array(sorted(range(len(prio)), key=lambda x: (-int(prio[x]), x)), _np.int64)
    rank_of = _np.empty(len(prio), _np.int64)
    rank_of[rank_type] = _np.arange(len(prio))
    return rank_type, rank_of, _np.ascontiguousarray(prio[rank_type])


def _fast_tables(trans, int ncls, out_ptr, out_ids, pat_type, priority):
    """The automaton renumbered for offheap_fvote_strings: states with output last
    (rows from ``thr`` on), no sign bits; per state its types as bits of their rank
    (by priority, highest first, then index); rank -> type and rank -> priority; the
    new number of each state; and per new state its votes, (ptr, type, count) CSR."""
    t = _np.asarray(trans)
    op = _np.asarray(out_ptr)
    nst = len(t) // ncls
    if not _signs_agree(trans, ncls, out_ptr):
        raise ValueError("trans sign bits disagree with out_ptr")
    has_out = op[1:] > op[:-1]
    rows = _np.where(t < 0, ~t, t) // ncls
    order = _np.concatenate([_np.flatnonzero(~has_out), _np.flatnonzero(has_out)])
    new_of = _np.empty(nst, _np.int64)
    new_of[order] = _np.arange(nst)
    trans2 = (new_of[rows] * ncls).astype(_np.int32).reshape(nst, ncls)[order].ravel()
    thr = int((~has_out).sum()) * ncls
    prio = _np.asarray(priority)
    rank_type, rank_of, rank_prio = _ranks(prio)
    bits = _np.left_shift(_np.uint64(1), rank_of[_np.asarray(pat_type)[_np.asarray(out_ids)]].astype(_np.uint64)) \
        if len(out_ids) else _np.empty(0, _np.uint64)
    state_of_out = _np.repeat(_np.arange(nst), _np.diff(op))
    tmask_old = _np.zeros(nst, _np.uint64)
    _np.bitwise_or.at(tmask_old, state_of_out, bits)
    tmask = tmask_old[order]
    # per new state, its (type, matches) pairs: the votes a tie is settled by
    nt = max(len(prio), 1)
    key = _np.unique(new_of[state_of_out] * nt + _np.asarray(pat_type)[_np.asarray(out_ids)],
                     return_counts=True) if len(out_ids) else (_np.empty(0, _np.int64), _np.empty(0, _np.int64))
    sv_ptr = _np.searchsorted(key[0] // nt, _np.arange(nst + 1)).astype(_np.int64)
    votes = (sv_ptr, (key[0] % nt).astype(_np.int64), key[1].astype(_np.int64))
    return trans2, thr, tmask, rank_type, rank_prio, new_of, votes


@cython.boundscheck(False)
@cython.wraparound(False)
def tally_classes(int64_t[::1] cls, const uint64_t[::1] lengths, int64_t other,
                  int64_t[::1] class_bytes, int64_t[::1] class_strings):
    """Give the strings no type named (class -1) class ``other``, in place, and add
    each class's bytes and strings to ``class_bytes`` and ``class_strings``. Returns
    this call's strings per class. One pass, where numpy takes three."""
    cdef Py_ssize_t n = cls.shape[0], nc = class_bytes.shape[0], i
    if lengths.shape[0] != n or class_strings.shape[0] != nc:
        raise ValueError("array lengths differ")
    if not 0 <= other < nc:
        raise ValueError("other must be a class index")
    here = _np.zeros(nc, _np.int64)
    cdef int64_t[::1] h = here
    cdef int64_t c
    cdef bint bad = False
    with nogil:
        for i in range(n):
            c = cls[i]
            if c < 0:
                c = other
                cls[i] = c
            if c >= nc:
                bad = True
                break
            class_bytes[c] += <int64_t>lengths[i]
            h[c] += 1
        if not bad:
            for i in range(nc):
                class_strings[i] += h[i]
    if bad:
        raise ValueError("class out of range")
    return here


@cython.boundscheck(False)
@cython.wraparound(False)
def copy_groups(const int64_t[::1] reps):
    """Groups of copies from ``reps`` (each string's index of an earlier string with
    the same bytes, or its own, as ``template_hashes`` gives them): ``(firsts,
    copies, group)``, the strings that are their own (ascending), how many strings
    each stands for, and each string's group (an index into those). One pass."""
    cdef Py_ssize_t n = reps.shape[0], i, nf = 0
    cdef int64_t r
    firsts = _np.empty(n, _np.int64)
    copies = _np.empty(n, _np.int64)
    group = _np.empty(n, _np.int64)
    cdef int64_t[::1] f = firsts, c = copies, g = group
    cdef bint bad = False
    with nogil:
        for i in range(n):
            r = reps[i]
            if r == i:
                f[nf] = i
                c[nf] = 1
                g[i] = nf
                nf += 1
            elif 0 <= r < i and reps[r] == r:
                g[i] = g[r]
                c[g[r]] += 1
            else:
                bad = True
                break
    if bad:
        raise ValueError("reps must name an earlier string that is its own")
    return firsts[:nf], copies[:nf], group
