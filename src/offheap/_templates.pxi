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
# hash of the masked text, mixed 8 bytes at a time (see _Hasher).

cimport cython
from libc.stdint cimport uint64_t

cdef enum:
    LONG_TOKEN = 16

cdef uint64_t MIX = 0x9E3779B97F4A7C15ULL

# byte classes: 0 other, 1 letter, 2 digit, 3 double quote
cdef unsigned char _TCLASS[256]
for _c in range(256):
    _TCLASS[_c] = 1 if (65 <= _c <= 90 or 97 <= _c <= 122) else 2 if 48 <= _c <= 57 else 3 if _c == 34 else 0


cdef struct _Hasher:
    uint64_t h        # state, mixed once per 8 output bytes (no per-byte dependency chain)
    uint64_t acc      # output bytes not yet mixed, little-endian
    int nacc
    uint64_t n        # output bytes so far


cdef inline void _put(_Hasher *s, unsigned char c) noexcept nogil:
    s.acc |= (<uint64_t>c) << (8 * s.nacc)
    s.nacc += 1
    s.n += 1
    if s.nacc == 8:
        s.h = (s.h ^ s.acc) * MIX
        s.h ^= s.h >> 29
        s.acc = 0
        s.nacc = 0


cdef inline uint64_t _finish(_Hasher *s) noexcept nogil:
    cdef uint64_t h = s.h
    if s.nacc:
        h = (h ^ s.acc) * MIX
        h ^= h >> 29
    h = (h ^ s.n) * MIX
    return h ^ (h >> 32)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef uint64_t _template_hash(const unsigned char *p, Py_ssize_t n, int step) noexcept nogil:
    """Hash of the masked text of the characters p[0], p[step], ... below p[n]."""
    cdef _Hasher s
    s.h = 0x6A09E667F3BCC908ULL
    s.acc = 0
    s.nacc = 0
    s.n = 0
    cdef Py_ssize_t i = 0, j, t0
    cdef bint digit, space
    cdef unsigned char c, k
    while i < n:
        c = p[i]
        k = _TCLASS[c]
        if k == 0:
            _put(&s, c)
            i += step
        elif k == 3:
            # a quoted string holding a space is free text: '"#"'
            # (an inline loop: quotes come every few bytes in JSON, too often for memchr calls)
            space = False
            j = -1
            t0 = i + step
            while t0 < n:
                c = p[t0]
                if c == 34:
                    j = t0
                    break
                if c == 32:
                    space = True
                t0 += step
            if j >= 0 and space:
                _put(&s, 34)
                _put(&s, 35)
                _put(&s, 34)
                i = j + step
            else:
                _put(&s, 34)
                i += step
        else:
            t0 = i
            digit = False
            while i < n:
                k = _TCLASS[p[i]]
                if k == 2:
                    digit = True
                elif k != 1:
                    break
                i += step
            if digit or (i - t0) // step > LONG_TOKEN:
                _put(&s, 35)                 # '#'
            else:
                j = t0
                while j < i:
                    _put(&s, p[j])
                    j += step
    return _finish(&s)


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
