# glibc heap walking (included by _scan.pyx). Twin: _heap_py.py.
#
# Two kernels, both pure pointer chasing over one dumped heap:
#   heap_walk    follows the size fields from ``start`` to ``end`` and says, from the next
#                chunk's PREV_INUSE bit (glibc's boundary tag), whether each chunk is in use.
#   heap_follow  follows singly linked free lists (tcache, fastbins, bins) through the dump
#                and marks the chunks it meets; analysis in heap.py decides what to follow.
# Every read is checked against the buffer length first: the input is untrusted bytes.
# Words are read as host-endian 64-bit values (glibc chunk headers on x86-64 / aarch64 LE).

from libc.stdint cimport uint64_t, int64_t, uint8_t
from libc.string cimport memcpy
cimport cython
import numpy as np

# heap_walk kinds: what the boundary tags alone say about a chunk.
cdef enum:
    _HEAP_KIND_INUSE = 0   # next chunk's PREV_INUSE set (tcache/fastbin chunks look like this too)
    _HEAP_KIND_FREE = 1    # next chunk's PREV_INUSE clear and its prev_size matches: in a bin
    _HEAP_KIND_LAST = 2    # ends exactly at ``end``: the top chunk of a consistent heap

# heap_walk status codes (where the walk stopped and why).
cdef enum:
    _HEAP_END_OK = 0          # reached ``end`` exactly
    _HEAP_END_FENCEPOST = 1   # a 16-byte fencepost chunk (glibc closes old heaps with one)
    _HEAP_BAD_SIZE = 2        # size below MINSIZE (32), e.g. zero
    _HEAP_MISALIGNED = 3      # size not a multiple of 16
    _HEAP_PAST_END = 4        # chunk runs past ``end``
    _HEAP_FOOTER = 5          # free chunk whose next chunk's prev_size differs from its size
    _HEAP_MMAPPED_BIT = 6     # IS_MMAPPED set inside a heap
    _HEAP_HEADER_CUT = 7      # fewer than 16 bytes left for the next header

# heap_follow per-list end codes.
cdef enum:
    _HEAP_LIST_END = 0    # reached 0 / the end marker
    _HEAP_LIST_LEFT = 1   # the next pointer leaves the dump (another heap holds the rest)
    _HEAP_LIST_BAD = 2    # an anomaly stopped it
    _HEAP_LIST_LIMIT = 3  # max_steps chunks followed and the list goes on

HEAP_LIST_END = _HEAP_LIST_END
HEAP_LIST_LEFT = _HEAP_LIST_LEFT
HEAP_LIST_BAD = _HEAP_LIST_BAD
HEAP_LIST_LIMIT = _HEAP_LIST_LIMIT
HEAP_KIND_INUSE = _HEAP_KIND_INUSE
HEAP_KIND_FREE = _HEAP_KIND_FREE
HEAP_KIND_LAST = _HEAP_KIND_LAST
HEAP_END_OK = _HEAP_END_OK
HEAP_END_FENCEPOST = _HEAP_END_FENCEPOST
HEAP_BAD_SIZE = _HEAP_BAD_SIZE
HEAP_MISALIGNED = _HEAP_MISALIGNED
HEAP_PAST_END = _HEAP_PAST_END
HEAP_FOOTER = _HEAP_FOOTER
HEAP_MMAPPED_BIT = _HEAP_MMAPPED_BIT
HEAP_HEADER_CUT = _HEAP_HEADER_CUT


cdef inline uint64_t _heap_u64(const unsigned char* p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


@cython.boundscheck(False)
@cython.wraparound(False)
cdef int _heap_walk_pass(const unsigned char* buf, uint64_t start, uint64_t end,
                         int64_t* offs, int64_t* sizes, uint8_t* kinds,
                         int64_t* count, uint64_t* where) noexcept nogil:
    # One pass; with offs == NULL it only counts (the caller allocates, then walks again).
    cdef uint64_t pos = start, raw, size, nxt, nraw
    cdef int64_t n = 0
    cdef uint8_t kind
    cdef int status = _HEAP_END_OK
    while True:
        if pos == end:
            status = _HEAP_END_OK
            break
        if end - pos < 16:
            status = _HEAP_HEADER_CUT
            break
        raw = _heap_u64(buf + pos + 8)
        size = raw & ~(<uint64_t>7)
        if size == 16 or (size == 0 and end - pos == 16):
            # glibc closes a full heap with fenceposts: a 16-byte chunk, or (when the
            # old top had less than MINSIZE left) just a 0|PREV_INUSE header at the end
            status = _HEAP_END_FENCEPOST
            break
        if raw & 2:
            status = _HEAP_MMAPPED_BIT
            break
        if size & 15:
            status = _HEAP_MISALIGNED
            break
        if size < 32:
            status = _HEAP_BAD_SIZE
            break
        if size > end - pos:
            status = _HEAP_PAST_END
            break
        nxt = pos + size
        if nxt == end:
            kind = _HEAP_KIND_LAST
        else:
            if end - nxt < 16:
                status = _HEAP_HEADER_CUT
                pos = nxt
                break
            nraw = _heap_u64(buf + nxt + 8)
            if nraw & 1:
                kind = _HEAP_KIND_INUSE
            else:
                if _heap_u64(buf + nxt) != size:
                    status = _HEAP_FOOTER
                    break
                kind = _HEAP_KIND_FREE
        if offs != NULL:
            offs[n] = <int64_t>pos
            sizes[n] = <int64_t>size
            kinds[n] = kind
        n += 1
        pos = nxt
    count[0] = n
    where[0] = pos
    return status


@cython.boundscheck(False)
@cython.wraparound(False)
def heap_walk(const unsigned char[::1] buf, Py_ssize_t start, Py_ssize_t end):
    """Walk malloc chunks in ``buf[start:end]`` by their size fields.

    Returns ``(offsets, sizes, kinds, status, where)``: int64 offsets into ``buf`` and
    sizes of each chunk, uint8 kinds (HEAP_KIND_*), the HEAP_* status code that ended the
    walk and the buffer offset where it ended (the offending chunk on corruption).
    ``end`` is clamped to ``len(buf)``; nothing outside ``buf`` is ever read.

    >>> heap_walk(bytes(8) + (32 | 1).to_bytes(8, "little") + bytes(16), 0, 32)[3]
    0
    """
    cdef Py_ssize_t n = buf.shape[0]
    cdef int64_t count = 0
    cdef uint64_t where = 0
    cdef int status
    if start < 0:
        start = 0
    if end > n:
        end = n
    if end < start:
        end = start
    if n == 0:
        return (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.uint8),
                _HEAP_END_OK if start == end else _HEAP_HEADER_CUT, start)
    cdef const unsigned char* p = &buf[0]
    with nogil:
        status = _heap_walk_pass(p, <uint64_t>start, <uint64_t>end, NULL, NULL, NULL,
                                 &count, &where)
    offsets = np.empty(count, np.int64)
    sizes = np.empty(count, np.int64)
    kinds = np.empty(count, np.uint8)
    cdef int64_t[::1] o = offsets
    cdef int64_t[::1] s = sizes
    cdef uint8_t[::1] k = kinds
    if count > 0:
        with nogil:
            status = _heap_walk_pass(p, <uint64_t>start, <uint64_t>end, &o[0], &s[0], &k[0],
                                     &count, &where)
    return offsets, sizes, kinds, status, <Py_ssize_t>where


cdef inline int64_t _heap_find(const int64_t* offs, int64_t n, int64_t off) noexcept nogil:
    # Binary search: index of the chunk starting exactly at ``off``, or -1.
    cdef int64_t lo = 0, hi = n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if offs[mid] < off:
            lo = mid + 1
        else:
            hi = mid
    if lo < n and offs[lo] == off:
        return lo
    return -1


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _heap_follow_pass(const unsigned char* buf, uint64_t buflen, uint64_t base,
                            const int64_t* offs, const int64_t* sizes, int64_t n,
                            const uint64_t* heads, const uint64_t* ends, const int64_t* max_steps,
                            const int64_t* expect, const uint8_t* labels, int64_t nheads,
                            uint64_t ptr_adjust, uint64_t link_off, int mangle,
                            uint8_t* marks, int64_t* per_head,
                            int64_t* out_steps, int64_t* out_anom) noexcept nogil:
    # per_head (may be NULL): [2h] chunks marked on list h, [2h+1] how the list ended
    # (_HEAP_LIST_*), so callers can check a list's length against a count (tcache).
    cdef int64_t h, k, idx, steps = 0, anom = 0
    cdef uint64_t p, addr, off, v, link
    cdef int code
    for h in range(nheads):
        p = heads[h]
        k = 0
        code = _HEAP_LIST_LIMIT
        while k < max_steps[h]:
            if p == 0 or p == ends[h]:
                code = _HEAP_LIST_END
                break
            if p < ptr_adjust:
                anom += 1
                code = _HEAP_LIST_BAD
                break
            addr = p - ptr_adjust
            if addr < base or addr - base >= buflen:
                code = _HEAP_LIST_LEFT
                break  # the list continues in another heap: not ours to follow
            off = addr - base
            idx = _heap_find(offs, n, <int64_t>off)
            if idx < 0:
                anom += 1
                code = _HEAP_LIST_BAD
                break
            if expect[h] != 0 and sizes[idx] != expect[h]:
                anom += 1
                code = _HEAP_LIST_BAD
                break
            if marks[idx] != 0:
                anom += 1  # a chunk sits in one free list at most: a loop or a torn list
                code = _HEAP_LIST_BAD
                break
            marks[idx] = labels[h]
            steps += 1
            k += 1
            if link_off > buflen or off > buflen - link_off or buflen - link_off - off < 8:
                code = _HEAP_LIST_LEFT
                break
            v = _heap_u64(buf + off + link_off)
            link = (base + off + link_off) >> 12
            if mangle:
                # glibc >= 2.32 safe-linking: stored = (address of the link >> 12) ^ pointer
                v = v ^ link
            if v != 0 and v == link:
                # The other mode's list end (0 stored mangled, or read unmangled): wrong mode.
                anom += 1
                code = _HEAP_LIST_BAD
                break
            p = v
        if code == _HEAP_LIST_LIMIT and (p == 0 or p == ends[h]):
            code = _HEAP_LIST_END  # exactly max_steps chunks, then the list's end
        if per_head != NULL:
            per_head[2 * h] = k
            per_head[2 * h + 1] = code
    out_steps[0] = steps
    out_anom[0] = anom


@cython.boundscheck(False)
@cython.wraparound(False)
def heap_follow(const unsigned char[::1] buf, uint64_t base,
                const int64_t[::1] offsets, const int64_t[::1] sizes,
                const uint64_t[::1] heads, const uint64_t[::1] ends,
                const int64_t[::1] max_steps, const int64_t[::1] expect,
                const uint8_t[::1] labels, uint64_t ptr_adjust, uint64_t link_off,
                bint mangle, uint8_t[::1] marks, int64_t[::1] per_head=None):
    """Follow free lists through the dump, marking chunks in ``marks`` (in place).

    Each list ``h`` starts at the pointer ``heads[h]`` (an address; the chunk is at
    ``pointer - ptr_adjust``), ends at 0, at ``ends[h]``, after ``max_steps[h]`` chunks
    or when it leaves ``[base, base + len(buf))``; the next pointer is the word at
    ``chunk + link_off`` (unmangled when ``mangle``). Chunks met get ``labels[h]`` unless
    their size differs from a nonzero ``expect[h]``. Returns ``(steps, anomalies)``:
    anomalies count pointers into the dump that hit no chunk start, wrong sizes, loops and
    a next pointer equal to ``link address >> 12`` (a list end read in the wrong mangling mode).
    ``per_head`` (optional, int64, length ``2 * len(heads)``) receives per list the chunks
    marked and how it ended (HEAP_LIST_END / _LEFT / _BAD / _LIMIT).

    >>> import numpy as np
    >>> z = lambda *v, t=np.int64: np.array(v, t)
    >>> m = np.zeros(1, np.uint8)
    >>> heap_follow(bytes(64), 0x1000, z(0), z(32), z(0x1000, t=np.uint64), z(0, t=np.uint64),
    ...             z(9), z(0), z(3, t=np.uint8), 0, 16, False, m), int(m[0])
    ((1, 0), 3)
    """
    cdef int64_t n = offsets.shape[0]
    cdef int64_t nheads = heads.shape[0]
    cdef int64_t steps = 0, anom = 0
    cdef Py_ssize_t i
    if sizes.shape[0] != n or marks.shape[0] != n:
        raise ValueError("offsets, sizes and marks must have the same length")
    if (ends.shape[0] != nheads or max_steps.shape[0] != nheads or expect.shape[0] != nheads
            or labels.shape[0] != nheads):
        raise ValueError("heads, ends, max_steps, expect and labels must have the same length")
    cdef int64_t* ph = NULL
    if per_head is not None:
        if per_head.shape[0] != 2 * nheads:
            raise ValueError("per_head must have length 2 * len(heads)")
        if nheads:
            ph = &per_head[0]
            for i in range(nheads):
                # Nothing followed: an empty head ends at once, any other stays unexplored.
                per_head[2 * i] = 0
                per_head[2 * i + 1] = (_HEAP_LIST_END if heads[i] == 0 or heads[i] == ends[i]
                                       else _HEAP_LIST_LEFT)
    if n == 0 or nheads == 0 or buf.shape[0] == 0:
        return 0, 0
    for i in range(n):
        # The walker's offsets are sorted and inside buf; reject anything else up front.
        if offsets[i] < 0 or offsets[i] >= buf.shape[0] or (i > 0 and offsets[i] <= offsets[i - 1]):
            raise ValueError("offsets must be strictly increasing offsets inside buf")
    with nogil:
        _heap_follow_pass(&buf[0], <uint64_t>buf.shape[0], base, &offsets[0], &sizes[0], n,
                          &heads[0], &ends[0], &max_steps[0], &expect[0], &labels[0], nheads,
                          ptr_adjust, link_off, mangle, &marks[0], ph, &steps, &anom)
    return steps, anom
