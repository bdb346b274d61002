"""Pure-Python twin of ``_templates.pxi``, and the masking rule in readable form."""

from __future__ import annotations

import re

import numpy as np

__all__ = ["template_hashes", "strings_and_hashes", "normalize_template", "group_keys", "LONG_TOKEN",
           "STRINGS_HASH_CHUNK"]

STRINGS_HASH_CHUNK = 256 << 10

LONG_TOKEN = 16
# a quoted string holding a space (free text), or a token of letters and digits
_TOKEN = re.compile(rb'"[^"]* [^"]*"|[A-Za-z0-9]+')
_SEED = 0x6A09E667F3BCC908
_MIX = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1


def _mask(m: re.Match) -> bytes:
    tok = m.group()
    if tok[0] == 34:
        return b'"#"'
    if len(tok) > LONG_TOKEN or any(48 <= c <= 57 for c in tok):
        return b"#"
    return tok


def normalize_template(text: bytes) -> bytes:
    """``text`` with its variable parts masked: a quoted string holding a space becomes
    ``"#"``, and every token of letters and digits that holds a digit or is longer than
    16 letters becomes ``#``.

    >>> normalize_template(b'{"event":"unread_count","uid":42,"id":"9f3c-77ab","text":"hi there"}')
    b'{"event":"unread_count","uid":#,"id":"#-#","text":"#"}'
    """
    return _TOKEN.sub(_mask, text)


def _hash(data: bytes) -> int:
    """The kernel's hash: mix each 8-byte little-endian word (the last one zero-padded),
    then the length."""
    h = _SEED
    for k in range(0, len(data), 8):
        h = ((h ^ int.from_bytes(data[k:k + 8], "little")) * _MIX) & _MASK64
        h ^= h >> 29
    h = ((h ^ len(data)) * _MIX) & _MASK64
    return h ^ (h >> 32)


def template_hashes(buf, base: int, offsets, lengths, unit: int = 1, lane: int = 0,
                    reps=None) -> np.ndarray:
    """See ``offheap._scan.template_hashes`` (here ``reps`` gets every copy's first
    occurrence)."""
    if len(offsets) != len(lengths):
        raise ValueError("offsets and lengths differ in length")
    if unit not in (1, 2, 4) or not 0 <= lane < unit:
        raise ValueError("unit must be 1, 2 or 4 and 0 <= lane < unit")
    if reps is not None and len(reps) != len(offsets):
        raise ValueError("reps must hold one index per string")
    data = memoryview(buf).cast("B")
    out = np.empty(len(offsets), dtype=np.uint64)
    first: dict[bytes, int] = {}
    for i, (off, ln) in enumerate(zip(np.asarray(offsets).tolist(), np.asarray(lengths).tolist())):
        rel = off - base
        if off < base or rel + ln > len(data):
            raise ValueError(f"string at offset {off} is not inside the buffer")
        raw = bytes(data[rel:rel + ln])
        out[i] = _hash(normalize_template(raw[lane::unit]))
        if reps is not None:
            reps[i] = first.setdefault(raw, i) if unit == 1 else i
    return out


def strings_and_hashes(buf, begin: int, end: int, final: bool, min_len: int, encoding: str,
                       whitespace: bool, base: int, state, zero_count=None,
                       chunk: int = STRINGS_HASH_CHUNK):
    """See ``offheap._scan.strings_and_hashes``: ``find_strings`` then
    ``template_hashes`` (here the chunks change nothing, and ``reps`` gets every
    copy's first occurrence)."""
    from ._strings_py import check_encoding, find_strings
    k, _lane = check_encoding(encoding)
    if k != 1:
        raise ValueError(f"strings_and_hashes takes a 1-byte encoding ('s' or 'S'), not {encoding!r}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, not {chunk}")
    offs, lens = find_strings(buf, begin, end, final, min_len, encoding, whitespace, base, state, zero_count)
    hashes = np.zeros(len(offs), np.uint64)
    reps = np.arange(len(offs), dtype=np.int64)
    skip = 1 if len(offs) and int(offs[0]) < base else 0      # the carried run: the caller's
    if len(offs) > skip:
        hashes[skip:] = template_hashes(buf, base, offs[skip:], lens[skip:], reps=reps[skip:])
        reps[skip:] += skip
    return offs, lens, hashes, reps


def group_keys(keys, lengths, classes=None):
    """See ``offheap._scan.group_keys``: distinct keys in order of first occurrence,
    with the index of that occurrence, the count and the sum of ``lengths``."""
    keys = np.asarray(keys, dtype=np.uint64)
    lengths = np.asarray(lengths, dtype=np.uint64)
    if len(keys) != len(lengths):
        raise ValueError("keys and lengths differ in length")
    if classes is not None:
        classes = np.asarray(classes, dtype=np.int64)
        if len(classes) != len(keys):
            raise ValueError("keys and classes differ in length")
        if len(classes) and (classes.min() < 0 or classes.max() >= 65536):
            raise ValueError("classes must be in 0..65535")
        keys = (classes.astype(np.uint64) << np.uint64(48)) | (keys & np.uint64((1 << 48) - 1))
    uniq, first, inverse, count = np.unique(keys, return_index=True, return_inverse=True,
                                            return_counts=True)
    nbytes = np.zeros(len(uniq), np.int64)
    np.add.at(nbytes, inverse.ravel(), lengths.astype(np.int64))
    order = np.argsort(first, kind="stable")
    return uniq[order], first[order].astype(np.int64), count[order].astype(np.int64), nbytes[order]
