# Joining matches to strings: which payload type names each string.
#
# Matches arrive in the order the matching kernel reports them (by end position,
# the carried matches of a string still open first), so the string that contains a
# match never moves backwards: one merge walk assigns matches to strings, and the
# per-string vote is counted in a scratch array indexed by type. O(matches + strings).

cimport cython
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport calloc, free


@cython.boundscheck(False)
@cython.wraparound(False)
def string_types(const uint64_t[::1] str_off, const uint64_t[::1] str_len,
                 const uint64_t[::1] m_off, const int32_t[::1] m_pid,
                 const int64_t[::1] pat_len, const int64_t[::1] pat_type,
                 const int64_t[::1] priority, int64_t[::1] pat_counts=None,
                 Py_ssize_t count_from=0):
    """Type of each string (-1: no match inside it) and matches inside strings per type.

    A match counts for a string when it lies wholly inside it. A string takes the type
    with the highest ``priority`` among its matches, then the one with most matches in
    it, then the lowest type index. Matches must be in end-position order.

    With ``pat_counts`` (int64, one per pattern), the matches ``count_from`` onwards
    (the ones not carried over from an earlier window) are also counted per pattern,
    inside strings or not: the pass that checks the ids does it, where a separate
    ``np.bincount`` would read millions of ids again.
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
    if not 0 <= count_from <= nm:
        raise ValueError("count_from must be within the matches")
    cdef bint bad = False
    cdef int32_t pid
    cdef int64_t *hist = NULL
    cdef Py_ssize_t k
    if pat_counts is not None:
        # four interleaved histograms: runs of one id (common: '":' after '":') do
        # not wait on the increment of the same counter
        hist = <int64_t *>calloc(4 * max(npat, 1), sizeof(int64_t))
        if hist == NULL:
            raise MemoryError()
    with nogil:
        for i in range(nm):
            pid = m_pid[i]
            if pid < 0 or pid >= npat:
                bad = True
                break
            if hist != NULL and i >= count_from:
                hist[(i & 3) * npat + pid] += 1
        if hist != NULL and not bad:
            for k in range(npat):
                pat_counts[k] += hist[k] + hist[npat + k] + hist[2 * npat + k] + hist[3 * npat + k]
    free(hist)
    if bad:
        raise ValueError("pattern id out of range")
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
