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
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free

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
cdef uint64_t _template_hash_strided(const unsigned char *p, Py_ssize_t n, int step) noexcept nogil:
    """Hash of the masked text of the characters p[0], p[step], ... below p[n]
    (16/32-bit text; _template_hash1 is the one-pass form for bytes)."""
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


cdef extern from *:
    """
    #include <stdint.h>
    #include <stdlib.h>
    #include <string.h>
    /* Masked text of one string of bytes, hashed as _template_hash_strided does, in
       one pass: the masked bytes go to a small buffer that is hashed 8 bytes at a
       time (the same words _put/_finish mix), tokens are copied while they are read,
       and a quote is resolved speculatively: its content is masked as ordinary text,
       and only when a space shows up before the next quote is the closing quote looked
       for; if there is one, the output rolls back to the opening quote and becomes
       '"#"' (a quoted string holding a space), else the text stands as it is. */
    #define OFFHEAP_TPL_BUF 1024
    #define OFFHEAP_TPL_LETTER 1
    #define OFFHEAP_TPL_DIGIT 2
    #define OFFHEAP_TPL_QUOTE 4
    #define OFFHEAP_TPL_SPACE 8
    static unsigned char offheap_tpl_class[256];
    static void offheap_tpl_init(void) {
        int c;
        for (c = 0; c < 256; c++)
            offheap_tpl_class[c] = ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) ? OFFHEAP_TPL_LETTER
                                 : (c >= '0' && c <= '9') ? OFFHEAP_TPL_DIGIT
                                 : c == '"' ? OFFHEAP_TPL_QUOTE : c == ' ' ? OFFHEAP_TPL_SPACE : 0;
    }
    #define OFFHEAP_TPL_MIX 0x9E3779B97F4A7C15ULL
    static inline uint64_t offheap_tpl_words(uint64_t h, const unsigned char *b, Py_ssize_t nw) {
        Py_ssize_t k;
        for (k = 0; k < nw; k++) {
            uint64_t w;
            memcpy(&w, b + 8 * k, 8);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
            w = __builtin_bswap64(w);
    #endif
            h = (h ^ w) * OFFHEAP_TPL_MIX;
            h ^= h >> 29;
        }
        return h;
    }
    /* Per byte of the little-endian word w: 0x80 in *a if it is an ASCII letter or
       digit, in *d if a digit. Each byte is tested on its own low 7 bits (no carry
       crosses into the next byte); bytes >= 0x80 are neither. */
    #define OFFHEAP_TPL_HIGH 0x8080808080808080ULL
    #define OFFHEAP_TPL_ONES 0x0101010101010101ULL
    static inline void offheap_tpl_alnum(uint64_t w, uint64_t *a, uint64_t *d) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
    #endif
        uint64_t ascii = ~w & OFFHEAP_TPL_HIGH;
        uint64_t lo = w & ~OFFHEAP_TPL_HIGH;
        uint64_t fold = (w | 0x20 * OFFHEAP_TPL_ONES) & ~OFFHEAP_TPL_HIGH;   /* A-Z -> a-z */
        uint64_t dg = (lo + (0x80 - '0') * OFFHEAP_TPL_ONES) & ~(lo + (0x80 - '9' - 1) * OFFHEAP_TPL_ONES);
        uint64_t lt = (fold + (0x80 - 'a') * OFFHEAP_TPL_ONES) & ~(fold + (0x80 - 'z' - 1) * OFFHEAP_TPL_ONES);
        *d = dg & ascii;
        *a = (dg | lt) & ascii;
    }
    /* index of the first '"' in p[i:n], or -1 */
    static inline Py_ssize_t offheap_tpl_quote(const unsigned char *p, Py_ssize_t i, Py_ssize_t n) {
        for (; i < n; i++)
            if (p[i] == '"')
                return i;
        return -1;
    }
    static uint64_t offheap_template_hash1(const unsigned char *p, Py_ssize_t n) {
        unsigned char out[OFFHEAP_TPL_BUF + 32];
        const unsigned char *T = offheap_tpl_class;
        uint64_t h = 0x6A09E667F3BCC908ULL, total = 0;
        Py_ssize_t i = 0, pos = 0, lastq = -1, j, t0, len;
        unsigned k, dig;
        while (i < n) {
            if (pos > OFFHEAP_TPL_BUF - 24) {
                /* Flush whole words; an open quote is resolved first, since the
                   rollback needs its output still in the buffer. */
                if (lastq >= 0) {
                    for (j = i; j < n && !(T[p[j]] & (OFFHEAP_TPL_QUOTE | OFFHEAP_TPL_SPACE)); j++)
                        ;
                    if (j < n && p[j] == ' ') {
                        j = offheap_tpl_quote(p, j + 1, n);
                        if (j >= 0) {
                            pos = lastq;
                            out[pos] = '"'; out[pos + 1] = '#'; out[pos + 2] = '"';
                            pos += 3;
                            i = j + 1;
                        }
                    }
                    lastq = -1;
                    continue;
                }
                len = pos & ~(Py_ssize_t)7;
                h = offheap_tpl_words(h, out, len >> 3);
                total += (uint64_t)len;
                memmove(out, out + len, (size_t)(pos - len));
                pos -= len;
            }
            k = T[p[i]];
            if (k & (OFFHEAP_TPL_LETTER | OFFHEAP_TPL_DIGIT)) {
                /* a token: copied as it is read (at most 17 bytes land in the
                   buffer), then kept, or replaced by '#' if variable */
                t0 = i;
                dig = 0;
                if (i + 8 <= n) {
                    /* eight bytes at a time: no loop exit to mispredict per token */
                    uint64_t w, a, d, stop;
                    for (;;) {
                        memcpy(&w, p + i, 8);
                        len = i - t0;
                        if (len <= 16)
                            memcpy(out + pos + len, &w, 8);
                        offheap_tpl_alnum(w, &a, &d);
                        stop = ~a & OFFHEAP_TPL_HIGH;
                        if (stop) {
                            unsigned run = (unsigned)__builtin_ctzll(stop) >> 3;
                            dig |= (d & ((1ULL << (8 * run)) - 1)) != 0;
                            i += run;
                            break;
                        }
                        dig |= d != 0;
                        i += 8;
                        if (i + 8 > n) {
                            while (i < n && (T[p[i]] & (OFFHEAP_TPL_LETTER | OFFHEAP_TPL_DIGIT))) {
                                len = i - t0;
                                out[pos + (len < 16 ? len : 16)] = p[i];
                                dig |= T[p[i]] == OFFHEAP_TPL_DIGIT;
                                i++;
                            }
                            break;
                        }
                    }
                    len = i - t0;
                    if (dig || len > 16) {
                        out[pos++] = '#';
                    } else {
                        pos += len;
                    }
                    continue;
                }
                do {
                    len = i - t0;
                    out[pos + (len < 16 ? len : 16)] = p[i];
                    dig |= k;
                    i++;
                } while (i < n && ((k = T[p[i]]) & (OFFHEAP_TPL_LETTER | OFFHEAP_TPL_DIGIT)));
                len = i - t0;
                if ((dig & OFFHEAP_TPL_DIGIT) || len > 16) {
                    out[pos++] = '#';
                } else {
                    pos += len;
                }
            } else if (k == OFFHEAP_TPL_QUOTE) {
                lastq = pos;
                out[pos++] = '"';
                i++;
            } else if (k == OFFHEAP_TPL_SPACE && lastq >= 0) {
                j = offheap_tpl_quote(p, i + 1, n);
                if (j >= 0) {
                    pos = lastq;
                    out[pos] = '"'; out[pos + 1] = '#'; out[pos + 2] = '"';
                    pos += 3;
                    i = j + 1;
                } else {
                    out[pos++] = ' ';
                    i++;
                }
                lastq = -1;
            } else {
                out[pos++] = p[i];
                i++;
            }
        }
        len = pos & ~(Py_ssize_t)7;
        h = offheap_tpl_words(h, out, len >> 3);
        total += (uint64_t)pos;
        if (pos > len) {
            uint64_t w = 0;
            Py_ssize_t r;
            for (r = pos - 1; r >= len; r--)
                w = (w << 8) | out[r];
            h = (h ^ w) * OFFHEAP_TPL_MIX;
            h ^= h >> 29;
        }
        h = (h ^ total) * OFFHEAP_TPL_MIX;
        return h ^ (h >> 32);
    }

    /* Leaked memory is mostly copies: in the arena-like dumps 87 % of the text bytes
       belong to strings byte-for-byte equal to an earlier one. A memo of recent
       strings (keyed by a hash of the raw bytes, confirmed by comparing the bytes
       with the memo's copy, so the result is exactly the one computing it gives)
       answers those with one comparison instead of the tokenizer: here direct-mapped,
       in the AVX-512 path two-way (see offheap_template_hashes1_avx512). */
    #define OFFHEAP_TPL_MEMO_BITS 14
    /* an entry holds a length and a string index in 31 bits: a call with a longer
       string, or more strings, runs without the memo */
    #define OFFHEAP_TPL_MEMO_MAXLEN 0x7FFFFFFF
    /* ANDed into every memo key: all ones, except in the tests, which clear bits so
       that different strings share keys and only the byte comparison tells them
       apart. */
    static uint64_t offheap_tpl_keymask = ~0ULL;
    typedef struct {
        const unsigned char *p;   /* a string inside the caller's buffer */
        int32_t n;                /* -1: empty (no string has that length) */
        int32_t root;             /* the string that made the entry (its index in the call) */
        uint64_t key, h;
    } offheap_tpl_memo;
    /* The memo's 512 KiB, 64-byte aligned (the AVX-512 path reads it as pairs of
       entries, one cache line each), every entry empty; NULL when out of memory. */
    static offheap_tpl_memo *offheap_tpl_memo_new(void) {
        size_t k, count = (size_t)1 << OFFHEAP_TPL_MEMO_BITS;
        offheap_tpl_memo *m = (offheap_tpl_memo *)aligned_alloc(64, count * sizeof(offheap_tpl_memo));
        if (m != NULL)
            for (k = 0; k < count; k++) {
                m[k].p = NULL;
                m[k].n = -1;
                m[k].root = 0;
                m[k].key = 0;
                m[k].h = 0;
            }
        return m;
    }

    /* A hash of all the raw bytes (strings of one template often differ only in an
       id somewhere in the middle): four independent multiply chains over 32 bytes
       at a time, about a tenth of the tokenizer's cost per byte. */
    static inline uint64_t offheap_tpl_key(const unsigned char *p, Py_ssize_t n) {
        uint64_t k0 = 0x243F6A8885A308D3ULL ^ (uint64_t)n, k1 = 0x13198A2E03707344ULL,
                 k2 = 0xA4093822299F31D0ULL, k3 = 0x082EFA98EC4E6C89ULL, w, x, y, z;
        Py_ssize_t i = 0;
        for (; i + 32 <= n; i += 32) {
            memcpy(&w, p + i, 8); memcpy(&x, p + i + 8, 8);
            memcpy(&y, p + i + 16, 8); memcpy(&z, p + i + 24, 8);
            k0 = (k0 ^ w) * OFFHEAP_TPL_MIX; k1 = (k1 ^ x) * OFFHEAP_TPL_MIX;
            k2 = (k2 ^ y) * OFFHEAP_TPL_MIX; k3 = (k3 ^ z) * OFFHEAP_TPL_MIX;
            k0 ^= k0 >> 29; k1 ^= k1 >> 29; k2 ^= k2 >> 29; k3 ^= k3 >> 29;
        }
        for (; i + 8 <= n; i += 8) {
            memcpy(&w, p + i, 8);
            k1 = (k1 ^ w) * OFFHEAP_TPL_MIX;
            k1 ^= k1 >> 29;
        }
        if (i < n) {
            w = 0;
            memcpy(&w, p + i, (size_t)(n - i));
            k2 = (k2 ^ w) * OFFHEAP_TPL_MIX;
        }
        k0 = (k0 ^ (k1 >> 17) ^ (k1 << 47)) * OFFHEAP_TPL_MIX;
        k0 = (k0 ^ (k2 >> 31) ^ (k2 << 33)) * OFFHEAP_TPL_MIX;
        k0 = (k0 ^ (k3 >> 23) ^ (k3 << 41)) * OFFHEAP_TPL_MIX;
        return (k0 ^ (k0 >> 32)) & offheap_tpl_keymask;
    }

    /* When the memo is used: while it answers at least one string in eight (counted
       per block of 1024 strings); when it does not (text without copies), it is left
       off for the next 16384 strings and then tried again. Kept between calls that
       hash one sequence of strings in parts (strings_and_hashes). */
    typedef struct {
        Py_ssize_t hits, resume;
        int use;
    } offheap_tpl_sched;
    static inline void offheap_tpl_sched_init(offheap_tpl_sched *s, offheap_tpl_memo *memo) {
        s->hits = 0;
        s->resume = 0;
        s->use = memo != NULL;
    }
    /* Hashes of strings from..to-1 (bytes) of the arrays; reps and memo entries hold
       indexes into them. */
    static void offheap_template_hashes1(const unsigned char *p, uint64_t base,
                                         const uint64_t *offsets, const uint64_t *lengths,
                                         Py_ssize_t from, Py_ssize_t to, uint64_t *out,
                                         offheap_tpl_memo *memo, offheap_tpl_sched *sched,
                                         int64_t *reps) {
        Py_ssize_t i, hits = sched->hits, resume = sched->resume;
        int use = sched->use;
        for (i = from; i < to; i++) {
            const unsigned char *q = p + (offsets[i] - base);
            Py_ssize_t n = (Py_ssize_t)lengths[i];
            if (reps)
                reps[i] = i;
            if (use) {
                uint64_t key = offheap_tpl_key(q, n);
                offheap_tpl_memo *e = &memo[key >> (64 - OFFHEAP_TPL_MEMO_BITS)];
                if (e->p != NULL && e->key == key && e->n == n && memcmp(e->p, q, (size_t)n) == 0) {
                    out[i] = e->h;
                    if (reps)
                        reps[i] = e->root;
                    hits++;
                } else {
                    e->p = q;
                    e->n = (int32_t)n;
                    e->root = (int32_t)i;
                    e->key = key;
                    e->h = out[i] = offheap_template_hash1(q, n);
                }
            } else {
                out[i] = offheap_template_hash1(q, n);
            }
            if ((i & 1023) == 1023) {
                if (use && hits < 128) {
                    use = 0;
                    resume = i + 16384;
                } else if (!use && memo != NULL && i >= resume) {
                    use = 1;
                }
                hits = 0;
            }
        }
        sched->hits = hits;
        sched->resume = resume;
        sched->use = use;
    }
    #if defined(__x86_64__) && defined(__GNUC__)
    #include <immintrin.h>
    #define OFFHEAP_TPL_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi,avx512vbmi2,bmi,bmi2,popcnt,lzcnt")))

    /* Masked text of one string, 64 bytes at a time, from bit masks of the chunk's
       letters, digits, quotes and spaces (bit k = byte k):
       - tokens are the runs of the letter|digit mask; a run is variable when it holds a
         digit or its start begins 17 alnum bytes. Adding each run's start to the mask of
         its "fine" letters carries to the byte after the run when the run is fine, and
         stops inside it otherwise; pext/pdep carry that verdict back to the run starts.
       - a quote k opens a free-text string when the bytes up to quote k+1 hold a space,
         unless quote k closed one itself: in runs of such quotes (counted as quotes, by
         pext), every other one opens, starting with the run's first.
       A token or quoted string cut by the chunk's end is left to the next chunk, which
       starts at that token or quote (so every chunk starts with its first quote free to
       open), except a token already 17 bytes long: it is variable, and the next chunk
       drops its rest. A quote with no other quote in the 64 bytes that follow it is
       resolved by a scan for its closing quote. */
    OFFHEAP_TPL_AVX512
    static inline uint64_t offheap_tpl_tail(uint64_t h, const unsigned char *out, Py_ssize_t pos, uint64_t total) {
        Py_ssize_t len = pos & ~(Py_ssize_t)7;
        h = offheap_tpl_words(h, out, len >> 3);
        if (pos > len) {
            uint64_t w;
            memcpy(&w, out + len, 8);
            w = _bzhi_u64(w, (unsigned)(8 * (pos - len)));
            h = (h ^ w) * OFFHEAP_TPL_MIX;
            h ^= h >> 29;
        }
        h = (h ^ total) * OFFHEAP_TPL_MIX;
        return h ^ (h >> 32);
    }

    OFFHEAP_TPL_AVX512
    static uint64_t offheap_template_hash1_avx512(const unsigned char *p, Py_ssize_t n) {
        unsigned char out[OFFHEAP_TPL_BUF + 128];
        uint64_t h = 0x6A09E667F3BCC908ULL, total = 0, carry = 0;
        Py_ssize_t i = 0, pos = 0;
        const __m512i lower = _mm512_set1_epi8(0x20), a = _mm512_set1_epi8('a'),
                      zero = _mm512_set1_epi8('0'), quote = _mm512_set1_epi8('"'),
                      space = _mm512_set1_epi8(' '), hashc = _mm512_set1_epi8('#'),
                      n25 = _mm512_set1_epi8(25), n9 = _mm512_set1_epi8(9);
        const uint64_t E = 0x5555555555555555ULL;
        while (i < n) {
            Py_ssize_t rem = n - i;
            int more = rem >= 64;
            uint64_t valid = more ? ~0ULL : _bzhi_u64(~0ULL, (unsigned)rem);
            __m512i v = _mm512_maskz_loadu_epi8(valid, p + i);
            uint64_t L = _mm512_cmple_epu8_mask(_mm512_sub_epi8(_mm512_or_si512(v, lower), a), n25);
            uint64_t D = _mm512_cmple_epu8_mask(_mm512_sub_epi8(v, zero), n9);
            uint64_t Q = _mm512_cmpeq_epi8_mask(v, quote);
            uint64_t A = L | D;
            unsigned cut = 64;
            uint64_t cont = carry ? A & ~(A + 1) : 0;
            if (cont == ~0ULL) {          /* the whole chunk continues a variable token */
                i += 64;
                continue;
            }
            uint64_t Sx = A & ~((A << 1) | carry);
            uint64_t cout = 0;
            if (more && (A >> 63)) {
                unsigned lead = (unsigned)_lzcnt_u64(~A);
                if (lead > 16)
                    cout = 1;
                else
                    cut = 64 - lead;
            }
            uint64_t QR = 0, QS = 0;
            if (Q) {
                uint64_t S = _mm512_cmpeq_epi8_mask(v, space), closers = 0;
                if (S) {
                    uint64_t QS_all = Q | S;
                    uint64_t qs = _pext_u64(Q, QS_all);
                    unsigned hiq = 63 - (unsigned)_lzcnt_u64(qs);
                    uint64_t spacey = qs & ~(qs >> 1) & _bzhi_u64(~0ULL, hiq);
                    if (spacey) {
                        uint64_t s = _pext_u64(spacey, qs);
                        uint64_t rs = s & ~(s << 1);
                        uint64_t Re = s & ~(s + (rs & E));
                        uint64_t m = (Re & E) | (s & ~Re & ~E);
                        uint64_t openers = _pdep_u64(m, Q);
                        closers = _pdep_u64(m << 1, Q);
                        QS = openers << 1;
                        QR = closers - QS;
                    }
                }
                unsigned qlast = 63 - (unsigned)_lzcnt_u64(Q);
                if (more && !((closers >> qlast) & 1)) {
                    if (qlast == 0) {
                        /* a quote with no other in the 64 bytes after it: find its closing
                           quote, noting a space before it */
                        Py_ssize_t j = i + 1;
                        int sp = 0;
                        for (;;) {
                            Py_ssize_t r2 = n - j;
                            if (r2 <= 0) { j = -1; break; }
                            uint64_t va = r2 >= 64 ? ~0ULL : _bzhi_u64(~0ULL, (unsigned)r2);
                            __m512i w = _mm512_maskz_loadu_epi8(va, p + j);
                            uint64_t q2 = _mm512_cmpeq_epi8_mask(w, quote);
                            uint64_t s2 = _mm512_cmpeq_epi8_mask(w, space);
                            if (q2) {
                                sp |= (s2 & (_blsi_u64(q2) - 1)) != 0;
                                j += (Py_ssize_t)_tzcnt_u64(q2);
                                break;
                            }
                            sp |= s2 != 0;
                            j += 64;
                        }
                        if (j >= 0 && sp) {
                            out[pos] = '"'; out[pos + 1] = '#'; out[pos + 2] = '"';
                            pos += 3;
                            i = j + 1;
                        } else {
                            out[pos++] = '"';
                            i += 1;
                        }
                        carry = 0;
                        goto flush;
                    }
                    cut = qlast;
                    cout = 0;
                }
            }
            {
                /* T: bytes that begin 17 letters or digits */
                uint64_t T = A & (A >> 1);
                T &= T >> 2;
                T &= T >> 4;
                T &= T >> 8;
                T &= A >> 16;
                uint64_t fine = L & ~(Sx & T);
                uint64_t landG = (fine + Sx) & ~A;
                uint64_t ends = (A + Sx) & ~A;
                uint64_t Sgood = _pdep_u64(_pext_u64(landG, ends), Sx);
                uint64_t Sbad = Sx & ~Sgood;
                uint64_t bad = A & ~(A + Sbad);
                uint64_t drop = ((bad & ~Sbad) | cont) & ~QR;
                uint64_t hpos = (Sbad & ~QR) | QS;
                drop |= QR & ~QS;
                uint64_t keep = valid & _bzhi_u64(~0ULL, cut) & ~drop;
                __m512i o = _mm512_mask_blend_epi8(hpos, v, hashc);
                _mm512_storeu_si512((void *)(out + pos), _mm512_maskz_compress_epi8(keep, o));
                pos += (Py_ssize_t)_mm_popcnt_u64(keep);
                i += cut;
                carry = cout;
            }
        flush:
            if (pos > OFFHEAP_TPL_BUF - 64) {
                Py_ssize_t len = pos & ~(Py_ssize_t)7;
                h = offheap_tpl_words(h, out, len >> 3);
                total += (uint64_t)len;
                memcpy(out, out + len, 8);
                pos -= len;
            }
        }
        return offheap_tpl_tail(h, out, pos, total + (uint64_t)pos);
    }
    /* The memo key of a string from its 64-byte chunks (any hash would do: a key only
       picks the memo slot, and a hit is confirmed byte for byte): per 64-bit lane, the
       product of its two halves after a constant is mixed in, as xxh3 accumulates. The
       first three chunks are loaded whatever the length (masked loads of nothing are
       free), so the common lengths take no branch. */
    OFFHEAP_TPL_AVX512
    static inline __m512i offheap_tpl_acc(__m512i acc, __m512i c, __m512i k) {
        __m512i d = _mm512_xor_si512(c, k);
        acc = _mm512_add_epi64(acc, _mm512_mul_epu32(d, _mm512_srli_epi64(d, 32)));
        return _mm512_add_epi64(acc, _mm512_shuffle_epi32(c, _MM_PERM_BADC));
    }
    /* The masks of a string's first three 64-byte chunks, by length (lengths from 192
       on load all three whole): a table lookup, where computing them costs either
       branches on the length, which it cannot predict, or a dozen instructions. */
    static uint64_t offheap_tpl_masks[193][4];
    static void offheap_tpl_avx512_init(void) {
        int n, c;
        for (n = 0; n <= 192; n++)
            for (c = 0; c < 3; c++) {
                int r = n - 64 * c;
                offheap_tpl_masks[n][c] = r <= 0 ? 0 : r >= 64 ? ~0ULL : (1ULL << r) - 1;
            }
    }
    /* the mask of the chunk at j >= 192 (the rare long strings) */
    OFFHEAP_TPL_AVX512
    static inline uint64_t offheap_tpl_chunkmask(Py_ssize_t n, Py_ssize_t j) {
        Py_ssize_t r = n - j;
        return r >= 64 ? ~0ULL : _bzhi_u64(~0ULL, (unsigned)r);
    }
    OFFHEAP_TPL_AVX512
    static inline uint64_t offheap_tpl_key512(const unsigned char *q, Py_ssize_t n, __m512i k0, __m512i k1) {
        const uint64_t *m = offheap_tpl_masks[n < 192 ? n : 192];
        __m512i c0 = _mm512_maskz_loadu_epi8(m[0], q), c1 = _mm512_maskz_loadu_epi8(m[1], q + 64),
                c2 = _mm512_maskz_loadu_epi8(m[2], q + 128);
        __m512i acc = offheap_tpl_acc(_mm512_set1_epi64(n), c0, k0);
        acc = offheap_tpl_acc(acc, c1, k1);
        acc = offheap_tpl_acc(_mm512_ror_epi64(acc, 23), c2, k0);
        Py_ssize_t j;
        for (j = 192; j < n; j += 64) {
            acc = _mm512_ror_epi64(acc, 23);
            acc = offheap_tpl_acc(acc, _mm512_maskz_loadu_epi8(offheap_tpl_chunkmask(n, j), q + j),
                                  (j & 64) ? k1 : k0);
        }
        __m256i a4 = _mm256_xor_si256(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64(acc, 1));
        __m128i a2 = _mm_add_epi64(_mm256_castsi256_si128(a4), _mm256_extracti128_si256(a4, 1));
        uint64_t key = (uint64_t)_mm_cvtsi128_si64(a2) * OFFHEAP_TPL_MIX ^ (uint64_t)_mm_extract_epi64(a2, 1);
        key = (key ^ (key >> 29)) * OFFHEAP_TPL_MIX;
        return (key ^ (key >> 32)) & offheap_tpl_keymask;
    }
    /* 1 when the n bytes at a and b are equal */
    OFFHEAP_TPL_AVX512
    static inline int offheap_tpl_equal(const unsigned char *a, const unsigned char *b, Py_ssize_t n) {
        const uint64_t *m = offheap_tpl_masks[n < 192 ? n : 192];
        uint64_t ne = _mm512_cmpneq_epi8_mask(_mm512_maskz_loadu_epi8(m[0], a), _mm512_maskz_loadu_epi8(m[0], b))
                    | _mm512_cmpneq_epi8_mask(_mm512_maskz_loadu_epi8(m[1], a + 64), _mm512_maskz_loadu_epi8(m[1], b + 64))
                    | _mm512_cmpneq_epi8_mask(_mm512_maskz_loadu_epi8(m[2], a + 128), _mm512_maskz_loadu_epi8(m[2], b + 128));
        Py_ssize_t j;
        for (j = 192; j < n && !ne; j += 64) {
            uint64_t mj = offheap_tpl_chunkmask(n, j);
            ne = _mm512_cmpneq_epi8_mask(_mm512_maskz_loadu_epi8(mj, a + j), _mm512_maskz_loadu_epi8(mj, b + j));
        }
        return ne == 0;
    }

    /* The memo as 8192 buckets of two entries (one cache line; fewer strings evicted by
       another with the same slot: 46,000 tokenizer calls instead of 66,000 on the
       arena-like dump). A key is computed OFFHEAP_TPL_AHEAD strings before its string is
       looked up, and its bucket prefetched, so the lookup does not wait for the bucket.
       A miss puts the string in the first entry and moves the first to the second,
       unless an entry has the string's key and length (a string of the same key that
       differs): that entry is replaced. */
    #define OFFHEAP_TPL_BUCKET_BITS (OFFHEAP_TPL_MEMO_BITS - 1)
    #define OFFHEAP_TPL_AHEAD 8
    #define OFFHEAP_TPL_PREFETCH 24
    typedef struct {
        Py_ssize_t hits, resume;
        int use;
        uint64_t ring[OFFHEAP_TPL_AHEAD];     /* keys of the next strings, by index % AHEAD */
        __m512i k0, k1;
    } offheap_tpl_state;
    /* Strings from..to-1, in one block of 1024 (the memo is switched on or off between
       blocks). With checked 0, the strings AHEAD and PREFETCH further on must exist (the
       bounds tests cost 4 % of the time, so the bulk runs without them). */
    OFFHEAP_TPL_AVX512
    static inline __attribute__((always_inline)) void offheap_tpl_run(
            const unsigned char *p, uint64_t base, const uint64_t *offsets, const uint64_t *lengths,
            Py_ssize_t count, uint64_t *out, offheap_tpl_memo *memo, offheap_tpl_state *s,
            Py_ssize_t from, Py_ssize_t to, int checked, int64_t *reps) {
        Py_ssize_t i;
        for (i = from; i < to; i++) {
            const unsigned char *q = p + (offsets[i] - base);
            Py_ssize_t n = (Py_ssize_t)lengths[i];
            if (reps)
                reps[i] = i;
            if (!checked || i + OFFHEAP_TPL_PREFETCH < count) {
                /* the strings ahead: their loads are the one latency not hidden here */
                const char *f = (const char *)p + (offsets[i + OFFHEAP_TPL_PREFETCH] - base);
                _mm_prefetch(f, _MM_HINT_T0);
                _mm_prefetch(f + 64, _MM_HINT_T0);
                _mm_prefetch(f + 128, _MM_HINT_T0);
            }
            if (s->use) {
                uint64_t key = s->ring[i % OFFHEAP_TPL_AHEAD];
                if (!checked || i + OFFHEAP_TPL_AHEAD < count) {
                    uint64_t ka = offheap_tpl_key512(p + (offsets[i + OFFHEAP_TPL_AHEAD] - base),
                                                     (Py_ssize_t)lengths[i + OFFHEAP_TPL_AHEAD], s->k0, s->k1);
                    s->ring[i % OFFHEAP_TPL_AHEAD] = ka;
                    _mm_prefetch((const char *)&memo[(ka >> (64 - OFFHEAP_TPL_BUCKET_BITS)) << 1], _MM_HINT_T0);
                }
                offheap_tpl_memo *b = &memo[(key >> (64 - OFFHEAP_TPL_BUCKET_BITS)) << 1];
                offheap_tpl_memo *e = &b[b[1].key == key && b[1].n == n];
                if (e->key == key && e->n == n && offheap_tpl_equal(e->p, q, n)) {
                    out[i] = e->h;
                    if (reps)
                        reps[i] = e->root;
                    s->hits++;
                } else {
                    if (e->key != key || e->n != n) {
                        b[1] = b[0];
                        e = b;
                    }
                    e->n = (int32_t)n;
                    e->root = (int32_t)i;
                    e->key = key;
                    e->h = out[i] = offheap_template_hash1_avx512(q, n);
                }
                e->p = q;          /* the latest copy: the likeliest to be in cache */
            } else {
                out[i] = offheap_template_hash1_avx512(q, n);
            }
        }
    }
    OFFHEAP_TPL_AVX512
    static void offheap_template_hashes1_avx512(const unsigned char *p, uint64_t base,
                                                const uint64_t *offsets, const uint64_t *lengths,
                                                Py_ssize_t from, Py_ssize_t count, uint64_t *out,
                                                offheap_tpl_memo *memo, offheap_tpl_sched *sched,
                                                int64_t *reps) {
        /* strings from..count-1: `count` bounds the look-ahead, which stops there */
        offheap_tpl_state s;
        Py_ssize_t i, k, end, bulk = count > OFFHEAP_TPL_PREFETCH ? count - OFFHEAP_TPL_PREFETCH : 0;
        s.hits = sched->hits;
        s.resume = sched->resume;
        s.use = sched->use;
        s.k0 = _mm512_set_epi64(0x243F6A8885A308D3ULL, 0x13198A2E03707344ULL, 0xA4093822299F31D0ULL,
                                0x082EFA98EC4E6C89ULL, 0x452821E638D01377ULL, 0xBE5466CF34E90C6CULL,
                                0xC0AC29B7C97C50DDULL, 0x3F84D5B5B5470917ULL);
        s.k1 = _mm512_set_epi64(0x9216D5D98979FB1BULL, 0xD1310BA698DFB5ACULL, 0x2FFD72DBD01ADFB7ULL,
                                0xB8E1AFED6A267E96ULL, 0xBA7C9045F12C7F99ULL, 0x24A19947B3916CF7ULL,
                                0x0801F2E2858EFC16ULL, 0x636920D871574E69ULL);
        if (s.use)
            for (k = from; k < from + OFFHEAP_TPL_AHEAD && k < count; k++)
                s.ring[k % OFFHEAP_TPL_AHEAD] = offheap_tpl_key512(p + (offsets[k] - base),
                                                                   (Py_ssize_t)lengths[k], s.k0, s.k1);
        for (i = from; i < count; i = end) {
            /* blocks of 1024 by index, whichever call hashes them */
            end = (i | 1023) + 1 < count ? (i | 1023) + 1 : count;
            if (end <= bulk) {
                offheap_tpl_run(p, base, offsets, lengths, count, out, memo, &s, i, end, 0, reps);
            } else {
                offheap_tpl_run(p, base, offsets, lengths, count, out, memo, &s, i, i > bulk ? i : bulk, 0, reps);
                offheap_tpl_run(p, base, offsets, lengths, count, out, memo, &s, i > bulk ? i : bulk, end, 1, reps);
            }
            if ((end & 1023) == 0) {
                /* the memo is used while it answers at least one string in eight; when it
                   does not (text without copies), it is left off for the next 16384
                   strings and then tried again */
                if (s.use && s.hits < 128) {
                    s.use = 0;
                    s.resume = end + 16383;
                } else if (!s.use && memo != NULL && end - 1 >= s.resume) {
                    s.use = 1;
                    for (k = end; k < end + OFFHEAP_TPL_AHEAD && k < count; k++)
                        s.ring[k % OFFHEAP_TPL_AHEAD] = offheap_tpl_key512(p + (offsets[k] - base),
                                                                           (Py_ssize_t)lengths[k], s.k0, s.k1);
                }
                s.hits = 0;
            }
        }
        sched->hits = s.hits;
        sched->resume = s.resume;
        sched->use = s.use;
    }
    #define OFFHEAP_TPL_HAVE_AVX512 1
    #else
    #define OFFHEAP_TPL_HAVE_AVX512 0
    static void offheap_tpl_avx512_init(void) {
    }
    static void offheap_template_hashes1_avx512(const unsigned char *p, uint64_t base,
                                                const uint64_t *offsets, const uint64_t *lengths,
                                                Py_ssize_t from, Py_ssize_t count, uint64_t *out,
                                                offheap_tpl_memo *memo, offheap_tpl_sched *sched,
                                                int64_t *reps) {
        offheap_template_hashes1(p, base, offsets, lengths, from, count, out, memo, sched, reps);
    }
    #endif
    """
    void offheap_tpl_init() noexcept nogil
    void offheap_tpl_avx512_init() noexcept nogil
    uint64_t offheap_template_hash1(const unsigned char* p, Py_ssize_t n) noexcept nogil
    ctypedef struct offheap_tpl_memo:
        pass
    offheap_tpl_memo *offheap_tpl_memo_new() noexcept nogil
    uint64_t offheap_tpl_keymask
    Py_ssize_t OFFHEAP_TPL_MEMO_MAXLEN
    ctypedef struct offheap_tpl_sched:
        Py_ssize_t hits
        Py_ssize_t resume
        int use
    void offheap_tpl_sched_init(offheap_tpl_sched* s, offheap_tpl_memo* memo) noexcept nogil
    void offheap_template_hashes1(const unsigned char* p, uint64_t base, const uint64_t* offsets,
                                  const uint64_t* lengths, Py_ssize_t start, Py_ssize_t stop,
                                  uint64_t* out, offheap_tpl_memo* memo, offheap_tpl_sched* sched,
                                  int64_t* reps) noexcept nogil
    void offheap_template_hashes1_avx512(const unsigned char* p, uint64_t base, const uint64_t* offsets,
                                         const uint64_t* lengths, Py_ssize_t start, Py_ssize_t stop,
                                         uint64_t* out, offheap_tpl_memo* memo, offheap_tpl_sched* sched,
                                         int64_t* reps) noexcept nogil

offheap_tpl_init()
offheap_tpl_avx512_init()


@cython.boundscheck(False)
@cython.wraparound(False)
def template_hashes(const unsigned char[::1] buf, uint64_t base, const uint64_t[::1] offsets,
                    const uint64_t[::1] lengths, int unit=1, int lane=0, int64_t[::1] reps=None):
    """Hash of each string's masked text (see ``normalize_template``). Strings are
    ``lengths`` bytes at absolute ``offsets`` inside ``buf`` (whose first byte is at
    ``base``); for 16/32-bit text, ``unit`` and ``lane`` pick the character bytes.

    ``reps`` (optional, one per string) gets for each string the index of an earlier
    string with the same bytes, or its own: the copies the memo recognised (not
    necessarily all of them), for callers that can then work on the others only."""
    cdef Py_ssize_t count = offsets.shape[0], i, n = buf.shape[0]
    cdef uint64_t longest = 0
    cdef int64_t *rp = NULL
    if lengths.shape[0] != count:
        raise ValueError("offsets and lengths differ in length")
    if reps is not None:
        if reps.shape[0] != count:
            raise ValueError("reps must hold one index per string")
        if count:
            rp = &reps[0]
    if unit not in (1, 2, 4) or not 0 <= lane < unit:
        raise ValueError("unit must be 1, 2 or 4 and 0 <= lane < unit")
    for i in range(count):
        if offsets[i] < base or offsets[i] - base + lengths[i] > <uint64_t>n:
            raise ValueError(f"string at offset {offsets[i]} is not inside the buffer")
        longest = max(longest, lengths[i])
    out = np.empty(count, dtype=np.uint64)
    cdef uint64_t[::1] o = out
    cdef const unsigned char *p = &buf[0] if n > 0 else NULL
    cdef offheap_tpl_memo *memo = NULL
    # (a memo of 512 KiB pays for many strings only)
    if unit == 1 and 256 <= count <= OFFHEAP_TPL_MEMO_MAXLEN and longest <= OFFHEAP_TPL_MEMO_MAXLEN:
        memo = offheap_tpl_memo_new()
        if memo == NULL:
            raise MemoryError()
    cdef offheap_tpl_sched sched
    offheap_tpl_sched_init(&sched, memo)
    with nogil:
        if unit == 1:
            if count and offheap_simd:
                offheap_template_hashes1_avx512(p, base, &offsets[0], &lengths[0], 0, count, &o[0],
                                                memo, &sched, rp)
            elif count:
                offheap_template_hashes1(p, base, &offsets[0], &lengths[0], 0, count, &o[0], memo,
                                         &sched, rp)
        else:
            for i in range(count):
                o[i] = _template_hash_strided(p + (offsets[i] - base) + lane,
                                              <Py_ssize_t>lengths[i] - lane, unit)
                if rp != NULL:
                    rp[i] = i
    free(memo)
    return out


# Bytes scanned for strings before those strings are hashed: small enough that the
# hashing reads them from L2, where the string scan just left them. Hashing a whole
# 64 MiB window after scanning it read every string twice from memory, and two
# processes scanning at once slowed each other by a third.
STRINGS_HASH_CHUNK = 256 << 10


def _staggered_outputs(Py_ssize_t cap, old, Py_ssize_t count):
    """strings_and_hashes' four output arrays (offsets, lengths, hashes: uint64; reps:
    int64) of ``cap`` entries, the first ``count`` copied from ``old``. Rows of one
    block, 1 KiB apart modulo 4 KiB: the hashing stores to two of them while it
    loads from the other two, and arrays allocated one by one (each its own mmap)
    start at the same offset in their pages, where a load 4 KiB away from a store
    still in flight waits for it as if they overlapped (4K aliasing): 17 ms per
    64 MiB when the allocator staggered them, 21-22 when not."""
    cdef Py_ssize_t row = (cap + 511) // 512 * 512 + 128      # 8 * row = 1 KiB mod 4 KiB
    block = np.empty(4 * row, dtype=np.uint64)
    out = [block[k * row:k * row + cap] for k in range(4)]
    out[3] = out[3].view(np.int64)
    if old is not None:
        for k in range(4):
            out[k][:count] = old[k][:count]
    return out


@cython.boundscheck(False)
@cython.wraparound(False)
def strings_and_hashes(const unsigned char[::1] buf, Py_ssize_t begin, Py_ssize_t end, bint final,
                       int min_len, str encoding, bint whitespace, uint64_t base, uint64_t[::1] state,
                       uint64_t[::1] zero_count=None, Py_ssize_t chunk=STRINGS_HASH_CHUNK):
    """``find_strings`` for a 1-byte encoding ("s" or "S") and ``template_hashes`` of
    the strings found, with ``reps``, in one pass: ``(offsets, lengths, hashes, reps)``.

    The range is scanned ``chunk`` bytes at a time and each chunk's strings are hashed
    while they are in cache; one memo serves the whole range, so a copy is recognised
    wherever its earlier copy lies in ``buf``. A string that begins before ``base``
    (the run carried in ``state`` from an earlier buffer) cannot be read here: it gets
    hash 0 and is its own rep, for the caller to hash."""
    cdef int k, lane
    k, lane = check_encoding(encoding)
    if k != 1:
        raise ValueError(f"strings_and_hashes takes a 1-byte encoding ('s' or 'S'), not {encoding!r}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, not {chunk}")
    _check_scan(buf.shape[0], begin, end, min_len, state, zero_count)
    cdef Py_ssize_t n = buf.shape[0]
    cdef uint64_t *zp = &zero_count[0] if zero_count is not None else NULL
    cdef uint64_t ws_hi = 14 if whitespace else 10
    cdef uint64_t high = HIGH8 if encoding == "S" else 0
    cdef Py_ssize_t cap = (end - begin) // 128 + 1024
    out_off, out_len, out_hash, out_rep = _staggered_outputs(cap, None, 0)
    cdef uint64_t[::1] o_off = out_off, o_len = out_len, o_hash = out_hash
    cdef int64_t[::1] o_rep = out_rep
    cdef Py_ssize_t count = 0, done = 0, pos = begin, cend
    cdef const unsigned char *p = &buf[0] if n > 0 else NULL
    cdef uint64_t *stp = &state[0]
    cdef offheap_tpl_memo *memo = NULL
    cdef offheap_tpl_sched sched
    # (a memo of 512 KiB pays for many strings only; entries hold 31-bit lengths and indexes)
    if end - begin >= 1 << 16 and n <= OFFHEAP_TPL_MEMO_MAXLEN:
        memo = offheap_tpl_memo_new()
        if memo == NULL:
            raise MemoryError()
    offheap_tpl_sched_init(&sched, memo)
    try:
        while True:
            with nogil:
                while True:
                    cend = end if end - pos <= chunk else pos + chunk
                    if pos < cend:
                        pos = _scan_bytes(p, n, pos, cend, min_len, ws_hi, high, <int64_t>base, stp,
                                          &o_off[0], &o_len[0], &count, cap, zp)
                        if pos < cend:
                            break                # output nearly full: grow with the GIL
                    if pos >= end and final and stp[ST_OPEN]:
                        if count >= cap:
                            break
                        _close_run(stp, min_len, 1, &o_off[0], &o_len[0], &count)
                    if done == 0 and count and o_off[0] < base:
                        o_hash[0] = 0            # the carried run: the caller hashes it
                        o_rep[0] = 0
                        done = 1
                    if count > done:
                        if offheap_simd:
                            offheap_template_hashes1_avx512(p, base, &o_off[0], &o_len[0], done, count,
                                                            &o_hash[0], memo, &sched, &o_rep[0])
                        else:
                            offheap_template_hashes1(p, base, &o_off[0], &o_len[0], done, count,
                                                     &o_hash[0], memo, &sched, &o_rep[0])
                        done = count
                    if pos >= end:
                        break
            if pos >= end and not (final and stp[ST_OPEN]):
                break
            cap *= 2
            out_off, out_len, out_hash, out_rep = _staggered_outputs(
                cap, (out_off, out_len, out_hash, out_rep), count)
            o_off = out_off
            o_len = out_len
            o_hash = out_hash
            o_rep = out_rep
    finally:
        free(memo)
    if count * 2 < cap:
        return out_off[:count].copy(), out_len[:count].copy(), out_hash[:count].copy(), out_rep[:count].copy()
    return out_off[:count], out_len[:count], out_hash[:count], out_rep[:count]


def _set_template_key_mask(uint64_t mask):
    """Test hook: AND ``mask`` into the memo keys of ``template_hashes`` (0 gives
    every string the same key), returning the previous mask. The hashes do not
    change, only how many strings the byte comparison has to tell apart."""
    global offheap_tpl_keymask
    previous = offheap_tpl_keymask
    offheap_tpl_keymask = mask
    return previous


@cython.boundscheck(False)
@cython.wraparound(False)
def group_keys(const uint64_t[::1] keys, const uint64_t[::1] lengths, const int64_t[::1] classes=None):
    """Group equal ``keys`` (one per string) in one pass: ``(unique, first, count,
    nbytes)``, the distinct keys in order of first occurrence, the index of that first
    occurrence, how many strings and how many bytes (sum of ``lengths``) each has.
    With ``classes`` (one per string, 0..65535), the key grouped is the class in the
    top 16 bits over the low 48 bits of ``keys`` (a template of one class), built here
    rather than as three temporary arrays.

    A hash table sized to the distinct keys (a few thousand templates per window),
    not a sort of every string: the per-window bookkeeping of ``TemplateCounter``.
    """
    cdef Py_ssize_t n = keys.shape[0], i, u = 0, bits = 12, mask, slot, cap
    if lengths.shape[0] != n:
        raise ValueError("keys and lengths differ in length")
    cdef bint with_class = classes is not None
    if with_class:
        if classes.shape[0] != n:
            raise ValueError("keys and classes differ in length")
        for i in range(n):
            if not 0 <= classes[i] < 65536:
                raise ValueError("classes must be in 0..65535")
    cap = 1 << (bits - 1)            # distinct keys allowed before the table grows
    table = np.full(1 << bits, -1, dtype=np.int64)
    unique = np.empty(cap, dtype=np.uint64)
    first = np.empty(cap, dtype=np.int64)
    count = np.zeros(cap, dtype=np.int64)
    nbytes = np.zeros(cap, dtype=np.int64)
    cdef int64_t[::1] tv = table
    cdef uint64_t[::1] uv = unique
    cdef int64_t[::1] fv = first, cv = count, bv = nbytes
    cdef uint64_t k
    cdef int64_t idx
    i = 0
    while i < n:
        mask = (1 << bits) - 1
        with nogil:
            while i < n:
                k = keys[i]
                if with_class:
                    k = (<uint64_t>classes[i] << 48) | (k & 0xFFFFFFFFFFFFULL)
                slot = <Py_ssize_t>((k * MIX) >> (64 - bits))
                while True:
                    idx = tv[slot]
                    if idx < 0 or uv[idx] == k:
                        break
                    slot = (slot + 1) & mask
                if idx < 0:
                    if u == cap:
                        break                # full: grow with the GIL, retry key i
                    idx = u
                    u += 1
                    tv[slot] = idx
                    uv[idx] = k
                    fv[idx] = i
                cv[idx] += 1
                bv[idx] += <int64_t>lengths[i]
                i += 1
        if i < n:
            bits += 1
            cap = 1 << (bits - 1)
            unique = np.resize(unique, cap)
            first = np.resize(first, cap)
            count = np.concatenate([count[:u], np.zeros(cap - u, np.int64)])
            nbytes = np.concatenate([nbytes[:u], np.zeros(cap - u, np.int64)])
            uv = unique
            fv = first
            cv = count
            bv = nbytes
            table = np.full(1 << bits, -1, dtype=np.int64)
            tv = table
            mask = (1 << bits) - 1
            for idx in range(u):
                slot = <Py_ssize_t>((uv[idx] * MIX) >> (64 - bits))
                while tv[slot] >= 0:
                    slot = (slot + 1) & mask
                tv[slot] = idx
    return unique[:u], first[:u], count[:u], nbytes[:u]
