"""Attribute every byte of a dump to one class: a payload type, other text, zero or binary.

The question is not "which strings are in this dump" but "what fills it". A dump is
scanned window by window: the string kernel finds the text runs, then either the
automaton steps through those strings alone and votes as it goes (``vote_strings``:
for signatures whose patterns match every few bytes, such as the built-ins' JSON
pieces), or the matching kernel finds every match in the window and they are joined
to the strings (``ac_scan`` + ``string_types``: for patterns it can skip to, such as
user signatures). The two give the same result:

* a **string** whose bytes contain matches of one or more payload types takes the
  type with the highest priority; on a tie the type with more matches inside the
  string, then the type listed first. Its bytes count for that type;
* the bytes of strings no pattern names are **other text**;
* the bytes outside strings are **zero** (0x00) or **binary** (everything else).

The classes add up to the dump's size exactly. Per type the report also gives string
and match counts, match counts per pattern (the matches inside strings: the text
being attributed; a pattern's matches in a string another type takes count too),
example offsets (and virtual addresses when
the dump's base address is known), and the top *templates*: the strings with their
variable parts masked (``normalize_template``), counted — the ``strings | sort | uniq
-c | sort -rn`` step over payload types. Memory is bounded by the window, whatever the
dump's size.

>>> from offheap.signatures import PayloadType, Signatures
>>> sigs = Signatures((PayloadType("unread", ['"unread_count"']),))
>>> a = attribute(b'{"event":"unread_count","n":1}' + bytes(34), sigs, min_len=8)
>>> a.class_bytes == {"unread": 30, OTHER_TEXT: 0, ZERO: 34, BINARY: 0}
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _impl
from ._templates_py import normalize_template
from .errors import InputError
from .scan import DEFAULT_WINDOW, Source, _check_size, _is_path, _source_size, check_options, windows
from .signatures import Signatures, builtin

__all__ = ["attribute", "Attribution", "TypeReport", "TemplateReport", "TemplateCounter",
           "OTHER_TEXT", "ZERO", "BINARY", "DEFAULT_MIN_LEN"]

OTHER_TEXT = "other text"
ZERO = "zero"
BINARY = "binary"
# 8 keeps pointers and short binary accidents out of the text classes while keeping
# short fragments of freed payloads (malloc overwrites a freed chunk's first 16 bytes).
DEFAULT_MIN_LEN = 8
EXAMPLES = 5
HASH_MASK = (1 << 48) - 1


@dataclass
class TemplateReport:
    """One template: masked text, how many strings and bytes, where one example is."""

    template: str
    count: int
    bytes: int
    example_offset: int
    example_address: int | None = None
    example: str = ""


@dataclass
class TypeReport:
    """What one payload type (or "other text") holds in a dump; ``Attribution.types``."""

    name: str
    bytes: int = 0
    share: float = 0.0
    strings: int = 0
    matches: int = 0
    pattern_matches: dict[str, int] = field(default_factory=dict)
    example_offsets: list[int] = field(default_factory=list)
    example_addresses: list[int] | None = None
    templates: list[TemplateReport] = field(default_factory=list)


@dataclass
class Attribution:
    """``attribute()``'s result: the partition of a dump's bytes and the per-type reports."""

    source: str
    size: int
    base_address: int | None
    min_len: int
    class_bytes: dict[str, int]
    types: list[TypeReport]
    other_text: TypeReport
    strings: int
    # with attribute(keep_strings=True): every string's offset, length and class index
    # (0..n-1 the payload types in signature order, n = other text), for heap attribution
    string_offsets: np.ndarray | None = field(default=None, repr=False)
    string_lengths: np.ndarray | None = field(default=None, repr=False)
    string_classes: np.ndarray | None = field(default=None, repr=False)

    def share(self, name: str) -> float:
        return self.class_bytes[name] / self.size if self.size else 0.0

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict
        return {
            "source": self.source, "size": self.size, "base_address": self.base_address,
            "min_len": self.min_len, "strings": self.strings,
            "class_bytes": dict(self.class_bytes),
            "types": [asdict(t) for t in self.types],
            "other_text": asdict(self.other_text),
        }


class TemplateCounter:
    """Counts (class, template hash) pairs over many windows with numpy, never a
    Python object per string. Keeps one example string per template. ``limit`` bounds
    memory on huge dumps: past it, the smallest templates are dropped (their counts
    are then lower bounds; the top ones stay exact as long as they stay on top)."""

    def __init__(self, limit: int = 200_000):
        self.limit = limit
        self.key = np.empty(0, np.uint64)
        self.count = np.empty(0, np.int64)
        self.nbytes = np.empty(0, np.int64)
        self.ex_off = np.empty(0, np.uint64)
        self.ex_len = np.empty(0, np.uint64)
        self.pruned = False

    def add(self, cls: np.ndarray, hashes: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> None:
        if not len(hashes):
            return
        # one sortable key per (class, template): class in the top 16 bits, 48 bits of
        # hash, made by the kernel that groups the window's strings first (a hash table:
        # a window has a few thousand templates among ~10^5 strings); then merged with
        # the table so far. An example is the earliest string of its template, as with
        # one stable sort
        ukey, first, ucount, ubytes = _impl.kernels().group_keys(
            hashes, np.ascontiguousarray(lengths, dtype=np.uint64),
            np.ascontiguousarray(cls, dtype=np.int64))
        k = np.concatenate([self.key, ukey])
        n = np.concatenate([self.count, ucount])
        b = np.concatenate([self.nbytes, ubytes])
        eo = np.concatenate([self.ex_off, offsets[first]])
        el = np.concatenate([self.ex_len, lengths[first]])
        order = np.argsort(k, kind="stable")
        k, n, b, eo, el = k[order], n[order], b[order], eo[order], el[order]
        first = np.ones(len(k), bool)
        first[1:] = k[1:] != k[:-1]
        starts = np.flatnonzero(first)
        self.key = k[starts]
        self.count = np.add.reduceat(n, starts)
        self.nbytes = np.add.reduceat(b, starts)
        self.ex_off, self.ex_len = eo[starts], el[starts]
        if len(self.key) > self.limit:
            keep = np.sort(np.argsort(-self.nbytes, kind="stable")[: self.limit // 2])
            for name in ("key", "count", "nbytes", "ex_off", "ex_len"):
                setattr(self, name, getattr(self, name)[keep])
            self.pruned = True

    @property
    def cls(self) -> np.ndarray:
        return (self.key >> np.uint64(48)).astype(np.int64)

    @property
    def hash(self) -> np.ndarray:
        return self.key & np.uint64(HASH_MASK)

    def top(self, cls: int, n: int) -> np.ndarray:
        """Indices of the ``n`` templates of class ``cls`` with the most bytes."""
        idx = np.flatnonzero((self.key >> np.uint64(48)) == np.uint64(cls))
        return idx[np.argsort(-self.nbytes[idx], kind="stable")[:n]]


class _Reader:
    """Reads example strings back from the source, after the scan (a file is opened
    once, at the first read, and closed by ``close``)."""

    def __init__(self, source: Source):
        self.source = source
        self.fd: int | None = None

    def read(self, offset: int, length: int) -> bytes:
        if _is_path(self.source):
            if self.fd is None:
                self.fd = os.open(self.source, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            return os.pread(self.fd, length, offset)
        with memoryview(self.source) as mv:
            return bytes(mv.cast("B")[offset:offset + length])

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _text_of(raw: bytes, limit: int = 400) -> str:
    return raw[:limit].decode("latin-1")


def attribute(source: Source, signatures: Signatures | None = None, *, min_len: int = DEFAULT_MIN_LEN,
              base_address: int | None = None, top: int = 10, window: int = DEFAULT_WINDOW,
              name: str | None = None, keep_strings: bool = False,
              method: str | None = None) -> Attribution:
    """Attribute every byte of ``source`` (path, bytes or mmap) to a payload type of
    ``signatures`` (default: the built-in recognisers), other text, zero or binary.

    ``base_address`` (the virtual address of the dump's first byte) adds addresses to
    the examples; ``top`` bounds the templates kept per type. ``keep_strings`` keeps
    every string's offset, length and class (memory grows with the dump: meant for
    heaps of at most 64 MiB, whose chunks ``heap.attribute`` then types).
    ``method`` picks how matches meet strings, for tests and benchmarks (the results
    are the same): "vote" steps the automaton over the strings alone and votes as it
    goes, "join" finds every match in the window and joins them to the strings; by
    default the faster for the signatures (see ``_method_for``).
    """
    check_options(min_len, "s")
    if top < 0:
        raise InputError(f"top must be >= 0, not {top}")
    sigs = builtin() if signatures is None else signatures
    label = name or (os.fspath(source) if _is_path(source) else "buffer")
    size = _source_size(source)
    _check_size(label, size, 1, 1)
    pset = sigs.pattern_set()
    pat_type = sigs.pattern_type.astype(np.int64)
    priority = np.array([t.priority for t in sigs.types], dtype=np.int64)
    ntypes = len(sigs.types)
    other = ntypes                      # class index of "other text"

    type_bytes = np.zeros(ntypes + 1, np.int64)
    type_strings = np.zeros(ntypes + 1, np.int64)
    pattern_matches = np.zeros(len(sigs.patterns), np.int64)
    examples: list[list[int]] = [[] for _ in range(ntypes + 1)]
    nstrings_total = 0
    templates = TemplateCounter()

    kernels = _impl.kernels()
    str_state = np.zeros(4, dtype=np.uint64)
    zeros = np.zeros(1, dtype=np.uint64)
    if method is None:
        method = _method_for(kernels, sigs)
    elif method not in ("vote", "join"):
        raise InputError(f"method must be 'vote' or 'join', not {method!r}")
    voter = _Voter(kernels, pset, pat_type, priority, pattern_matches) if method == "vote" else \
        _Joiner(kernels, pset, pat_type, priority, pattern_matches)
    reader = _Reader(source)
    try:
        kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

        for w in windows(source, window):
            # one pass finds the strings, counts the zero bytes and hashes the strings'
            # templates; the hashing also says which strings are copies of an earlier
            # one, which the voter then need not type again
            offs, lens, hashes, reps = _strings_and_hashes(kernels, w, min_len, str_state, zeros, reader)
            cls = voter.types(w, offs, lens, bool(str_state[0]), int(str_state[1]), reps)
            if len(offs):
                nstrings_total += len(offs)
                # untyped strings become "other text"; bytes and strings per class
                present = kernels.tally_classes(cls, lens, other, type_bytes, type_strings)
                _add_examples(examples, cls, offs, present)
                templates.add(cls, hashes, offs, lens)
                if keep_strings:
                    kept.append((offs, lens, cls))

        # every match counted lies in a string that names one type or another
        type_matches = np.bincount(pat_type, weights=pattern_matches, minlength=ntypes)[:ntypes].astype(np.int64)
        text_bytes = int(type_bytes.sum())
        class_bytes = {t.name: int(type_bytes[i]) for i, t in enumerate(sigs.types)}
        class_bytes[OTHER_TEXT] = int(type_bytes[other])
        zero_bytes = int(zeros[0])
        class_bytes[ZERO] = zero_bytes
        class_bytes[BINARY] = size - text_bytes - zero_bytes

        def report(i: int, name: str) -> TypeReport:
            r = TypeReport(name=name, bytes=int(type_bytes[i]), strings=int(type_strings[i]),
                           share=(int(type_bytes[i]) / size) if size else 0.0)
            r.example_offsets = examples[i]
            if base_address is not None:
                r.example_addresses = [base_address + o for o in examples[i]]
            for j in templates.top(i, top).tolist():
                off, ln = int(templates.ex_off[j]), int(templates.ex_len[j])
                raw = reader.read(off, ln)
                r.templates.append(TemplateReport(
                    template=_text_of(normalize_template(raw)), count=int(templates.count[j]),
                    bytes=int(templates.nbytes[j]), example_offset=off,
                    example_address=None if base_address is None else base_address + off,
                    example=_text_of(raw)))
            return r

        types = []
        for i, t in enumerate(sigs.types):
            r = report(i, t.name)
            r.matches = int(type_matches[i])
            r.pattern_matches = {
                sigs.patterns[p].decode("latin-1"): int(pattern_matches[p])
                for p in np.flatnonzero(sigs.pattern_type == i).tolist()}
            types.append(r)
        types.sort(key=lambda r: -r.bytes)
        result = Attribution(source=label, size=size, base_address=base_address, min_len=min_len,
                             class_bytes=class_bytes, types=types, other_text=report(other, OTHER_TEXT),
                             strings=nstrings_total)
        if keep_strings:
            result.string_offsets = np.concatenate([k[0] for k in kept]) if kept else np.empty(0, np.uint64)
            result.string_lengths = np.concatenate([k[1] for k in kept]) if kept else np.empty(0, np.uint64)
            result.string_classes = np.concatenate([k[2] for k in kept]) if kept else np.empty(0, np.int64)
        return result
    finally:
        reader.close()


def _add_examples(examples: list[list[int]], cls: np.ndarray, offs: np.ndarray, present: np.ndarray) -> None:
    """Keep the first EXAMPLES offsets of each class (``present``: the window's strings
    per class). Looks at a prefix first: scanning the whole window once per class
    costs more than the rest of the bookkeeping."""
    missing = [c for c in range(len(examples)) if len(examples[c]) < EXAMPLES and present[c]]
    if not missing:
        return
    head = cls[:4096]
    for c in missing:
        found = np.flatnonzero(head == c)
        if len(found) < EXAMPLES - len(examples[c]) and len(cls) > len(head):
            found = np.flatnonzero(cls == c)
        examples[c] += offs[found[:EXAMPLES - len(examples[c])]].tolist()


def _strings_and_hashes(kernels, w, min_len: int, state: np.ndarray, zeros: np.ndarray | None,
                        reader: _Reader) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A window's strings (``find_strings``), their template hashes, and for each
    string the index of an earlier one with the same bytes, or its own (see
    ``strings_and_hashes``). The string that began in an earlier window (no longer
    mapped) is read back from the source to be hashed, and is its own."""
    offs, lens, hashes, reps = kernels.strings_and_hashes(w.buf, w.begin, w.end, w.final, min_len, "s",
                                                          False, w.base, state, zeros)
    if len(offs) and int(offs[0]) < w.base:
        hashes[0] = _hash_read_back(kernels, reader, int(offs[0]), int(lens[0]))
    return offs, lens, hashes, reps


def _hash_read_back(kernels, reader: _Reader, offset: int, length: int) -> int:
    """Template hash of the string at ``offset``, read back from the source: a string
    that began in an earlier window, no longer mapped."""
    raw = reader.read(offset, length)
    return int(kernels.template_hashes(raw, offset, np.array([offset], np.uint64),
                                       np.array([length], np.uint64))[0])


def _method_for(kernels, sigs: Signatures) -> str:
    """"vote" when the AVX-512 voter takes these signatures (it types the strings
    with no match arrays: bench_match's ten dense patterns took 25 ms per 64 MiB where
    finding and joining their 1.2 million matches took 33); else "join" when the
    matching kernel finds the patterns without stepping every byte (a SIMD search or
    a root skip: few matches, found fast); else "vote"."""
    t = sigs.pattern_set().tables
    plan = getattr(kernels, "_vote_plan", None)     # the compiled kernels' own plans
    if plan is not None and plan(t.trans, t.classes, t.ncls, t.out_ptr, t.out_ids,
                                 sigs.pattern_type.astype(np.int64),
                                 np.array([x.priority for x in sigs.types], np.int64)) is not None:
        return "vote"
    path = getattr(kernels, "_ac_path", None)
    if path is None:
        return "vote"
    return "vote" if path(t.trans, t.classes, t.ncls, t.out_ptr, t.out_ids, t.pat_len) == "lanes" else "join"


# Below this many strings in a window, or when fewer than half are copies, every
# string is typed: grouping the copies would cost more than it saves.
_COPIES_MIN_STRINGS = 1024


class _Voter:
    """Types a window's strings with ``vote_strings``: the automaton steps the strings'
    bytes only and counts as it goes; the run still open at the window's end is
    carried (its state and matches) until it ends.

    A string that is a copy of an earlier one (``reps``) takes that one's type, and
    its matches count again: leaked memory is mostly copies (90 % of the strings of
    the arena-like dumps). Only the first copies are typed, once, each weighted by its
    number of copies. The string continuing the carried run is its own first copy
    with no copies after it, so the carry's matches count once."""

    def __init__(self, kernels, pset, pat_type, priority, counts):
        self.k = kernels
        t = pset.tables
        self.args = (t.trans, t.classes, t.ncls, t.out_ptr, t.out_ids, pat_type, priority)
        self.counts = counts
        self.carry = np.zeros(len(pat_type) + 3, np.int64)

    def _vote(self, w, offs, lens, open_run: bool, open_start: int, weights=None) -> np.ndarray:
        return self.k.vote_strings(w.buf, w.base, w.end, offs, lens, *self.args, self.counts, self.carry,
                                   open_run, open_start, weights)

    def types(self, w, offs, lens, open_run: bool, open_start: int, reps) -> np.ndarray:
        n = len(offs)
        if n < _COPIES_MIN_STRINGS:
            return self._vote(w, offs, lens, open_run, open_start)
        firsts, copies, group = self.k.copy_groups(reps)
        if 2 * len(firsts) > n:
            return self._vote(w, offs, lens, open_run, open_start)
        return self._vote(w, offs[firsts], lens[firsts], open_run, open_start, copies)[group]


class _Joiner:
    """Types a window's strings from every match in it (``ac_scan``) joined to them
    (``string_types``); the matches inside the run still open at the window's end wait
    for the next window."""

    def __init__(self, kernels, pset, pat_type, priority, counts):
        self.k = kernels
        self.tables = pset.tables.kernel_args()
        self.pat_len = pset.lengths.astype(np.int64)
        self.pat_type, self.priority, self.counts = pat_type, priority, counts
        self.state = 0
        self.carry_off = np.empty(0, np.uint64)
        self.carry_pid = np.empty(0, np.int32)

    def types(self, w, offs, lens, open_run: bool, open_start: int, reps) -> np.ndarray:
        # (every match in the window is found anyway: copies save nothing here)
        m_off, m_pid, self.state = self.k.ac_scan(w.buf, w.begin, w.end, *self.tables, self.state, w.base)
        if len(self.carry_off):
            m_off = np.concatenate([self.carry_off, m_off])
            m_pid = np.concatenate([self.carry_pid, m_pid])
        cls, _ = self.k.string_types(offs, lens, m_off, m_pid, self.pat_len, self.pat_type,
                                     self.priority, self.counts)
        if open_run:
            keep = m_off >= open_start
            self.carry_off, self.carry_pid = m_off[keep], m_pid[keep]
        else:
            self.carry_off, self.carry_pid = self.carry_off[:0], self.carry_pid[:0]
        return cls
