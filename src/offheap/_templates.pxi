# Template hashing: one 64-bit hash per string of its text with the variable parts
# masked, so `strings | sort | uniq -c` can be done over templates by numpy instead
# of a Python object per string.
#
# Masking rule (shared with _templates_py.normalize_template): a quoted string that
# holds a space is free text (a chat preview, a user agent) and becomes "#"; then the
# text is split into tokens of ASCII letters and digits, and a token that holds a
# digit, or is longer than LONG_TOKEN letters, is variable (numbers, hex ids, UUID
# parts, timestamps, random ids) and becomes one '#'. Everything else is kept, so
# identifiers such as "unread_count" still tell templates apart. The hash is 64-bit
# FNV-1a of the masked text.

cimport cython
from libc.stdint cimport uint64_t

cdef enum:
    LONG_TOKEN = 16

cdef uint64_t FNV_OFFSET = 0xcbf29ce484222325ULL
cdef uint64_t FNV_PRIME = 0x100000001b3ULL


cdef inline bint _is_alnum(unsigned char c) noexcept nogil:
    return (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef uint64_t _template_hash(const unsigned char *p, Py_ssize_t n, int step) noexcept nogil:
    cdef uint64_t h = FNV_OFFSET
    cdef Py_ssize_t i = 0, j, t0
    cdef bint digit, space
    cdef unsigned char c
    while i < n:
        c = p[i]
        if c == 34:                               # '"': free text inside?
            j = i + step
            space = False
            while j < n and p[j] != 34:
                if p[j] == 32:
                    space = True
                j += step
            if j < n and space:
                h = (h ^ 34) * FNV_PRIME
                h = (h ^ 35) * FNV_PRIME
                h = (h ^ 34) * FNV_PRIME
                i = j + step
                continue
        if not _is_alnum(c):
            h = (h ^ c) * FNV_PRIME
            i += step
            continue
        t0 = i
        digit = False
        while i < n and _is_alnum(p[i]):
            if p[i] <= 57:
                digit = True
            i += step
        if digit or (i - t0) // step > LONG_TOKEN:
            h = (h ^ 35) * FNV_PRIME            # '#'
        else:
            j = t0
            while j < i:
                h = (h ^ p[j]) * FNV_PRIME
                j += step
    return h


@cython.boundscheck(False)
@cython.wraparound(False)
def template_hashes(const unsigned char[::1] buf, uint64_t base, const uint64_t[::1] offsets,
                    const uint64_t[::1] lengths, int unit=1, int lane=0):
    """Hash of each string's masked text (see ``normalize_template``). Strings are
    ``lengths`` bytes at absolute ``offsets`` inside ``buf`` (whose first byte is at
    ``base``); for 16/32-bit text, ``unit`` and ``lane`` pick the character bytes."""
    cdef Py_ssize_t count = offsets.shape[0], i, n = buf.shape[0]
    if lengths.shape[0] != count:
        raise ValueError("offsets and lengths differ in length")
    if unit not in (1, 2, 4) or not 0 <= lane < unit:
        raise ValueError("unit must be 1, 2 or 4 and 0 <= lane < unit")
    for i in range(count):
        if offsets[i] < base or offsets[i] - base + lengths[i] > <uint64_t>n:
            raise ValueError(f"string at offset {offsets[i]} is not inside the buffer")
    out = np.empty(count, dtype=np.uint64)
    cdef uint64_t[::1] o = out
    cdef const unsigned char *p = &buf[0] if n > 0 else NULL
    with nogil:
        for i in range(count):
            o[i] = _template_hash(p + (offsets[i] - base) + lane,
                                  <Py_ssize_t>lengths[i] - lane, unit)
    return out
