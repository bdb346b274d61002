"""Find every occurrence of many byte patterns in a dump, without copying it.

``PatternSet(patterns)`` builds an Aho-Corasick automaton once (pyahocorasick builds
the trie and failure links; ``build_tables`` turns its ``Automaton.dump()`` into a
dense DFA table) and ``find_all(source)`` runs the kernel (``ac_scan``, Cython,
without the GIL) over a path, bytes or mmap, window by window, carrying the DFA
state across windows so matches spanning a window edge are found.

>>> ps = PatternSet([b"he", b"she", b"hers"])
>>> m = ps.find_all(b"ushers")
>>> list(zip(m.offsets.tolist(), m.pattern_ids.tolist()))
[(1, 1), (2, 0), (2, 2)]
"""

from __future__ import annotations

import mmap
import os
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple, Sequence, Union

import numpy as np

from . import _impl
from .errors import InputError

WINDOW = 64 << 20  # bytes mapped at a time: bounds memory on multi-GB dumps
MAX_TABLE_BYTES = 1 << 30  # refuse automata whose dense table would exceed this

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, mmap.mmap]


@dataclass(frozen=True)
class AcTables:
    """The dense DFA the kernel runs (layout documented in ``_match.pxi``).

    Built by ``build_tables``; ``kernel_args()`` gives the positional arguments of
    ``ac_scan`` between the range and the state.
    """

    trans: np.ndarray         # int32[n_states * ncls], row offsets, sign bit = output
    classes: np.ndarray       # int32[256], byte -> column
    ncls: int
    out_ptr: np.ndarray       # int64[n_states + 1]
    out_ids: np.ndarray       # int32
    pat_len: np.ndarray       # int32[n_patterns]
    start_filter: np.ndarray  # uint8[8192], bit (b0 | b1 << 8) set if a match can start
    n_states: int

    def kernel_args(self) -> tuple:
        return (self.trans, self.classes, self.ncls, self.out_ptr, self.out_ids,
                self.pat_len, self.start_filter)

    @property
    def nbytes(self) -> int:
        return int(self.trans.nbytes + self.out_ptr.nbytes + self.out_ids.nbytes)


class Matches(NamedTuple):
    """``PatternSet.find_all`` result: parallel arrays, sorted by (offset, pattern id)."""

    offsets: np.ndarray      # uint64 absolute start offsets in the source
    pattern_ids: np.ndarray  # int32 index into PatternSet.patterns

    @property
    def count(self) -> int:
        return int(self.offsets.shape[0])


def build_tables(patterns: Sequence[bytes]) -> AcTables:
    """Dense DFA tables for ``patterns`` (non-empty byte strings; duplicates allowed).

    pyahocorasick's PyPI build stores ``str`` keys, so each byte ``b`` becomes
    ``chr(b)`` (latin-1); its ``dump()`` labels edges with that byte. The trie is
    rebuilt from the dump, each node's text is checked against the patterns, and
    every row is filled from its failure state's row (breadth-first, so that row is
    already complete) before the node's own edges override it: the scan loop then
    needs one table lookup per byte and never follows a failure link.
    """
    import ahocorasick

    pats = [bytes(p) for p in patterns]
    for i, p in enumerate(pats):
        if not p:
            raise InputError(f"pattern {i} is empty")
    by_text: dict[bytes, list[int]] = {}
    for i, p in enumerate(pats):
        by_text.setdefault(p, []).append(i)

    auto = ahocorasick.Automaton()
    for p in by_text:
        auto.add_word(p.decode("latin-1"), 0)
    if by_text:
        auto.make_automaton()
        nodes, edges, fails = auto.dump()
    else:
        nodes, edges, fails = [(0, 0)], [], []

    node_ids = [n for n, _eow in nodes]
    children: dict[int, list[tuple[int, int]]] = {n: [] for n in node_ids}
    child_set = set()
    for parent, label, child in edges:
        byte = label[0] if len(label) == 1 else int.from_bytes(label, "little")
        children[parent].append((byte, child))
        child_set.add(child)
    roots = [n for n in node_ids if n not in child_set]
    if len(roots) != 1:
        raise RuntimeError(f"pyahocorasick dump has {len(roots)} roots")
    root = roots[0]
    fail = dict(fails)

    # Breadth-first numbering: root is state 0, every failure target comes earlier.
    order = [root]
    index = {root: 0}
    text = {root: b""}
    queue = deque([root])
    while queue:
        n = queue.popleft()
        for byte, c in sorted(children[n]):
            index[c] = len(order)
            order.append(c)
            text[c] = text[n] + bytes([byte])
            queue.append(c)
    eow = {n for n, e in nodes if e}
    found = {text[n] for n in eow}
    if found != set(by_text):
        raise RuntimeError("pyahocorasick dump does not spell the patterns (unexpected build?)")

    used = sorted({b for p in by_text for b in p})
    classes = np.zeros(256, dtype=np.int32)
    for col, b in enumerate(used, start=1):
        classes[b] = col
    ncls = len(used) + 1
    n_states = len(order)
    if n_states * ncls * 4 > MAX_TABLE_BYTES or n_states * ncls >= 2**31:
        raise InputError(f"{len(pats)} patterns need a {n_states} x {ncls} table: too large")

    rows = np.zeros((n_states, ncls), dtype=np.int64)  # target state indices
    outs: list[list[int]] = [[] for _ in range(n_states)]
    for k, n in enumerate(order):
        if k:
            f = index[fail.get(n, root)]
            rows[k] = rows[f]
            own = by_text.get(text[n], []) if n in eow else []
            outs[k] = own + outs[f]
        for byte, c in children[n]:
            rows[k, classes[byte]] = index[c]

    has_out = np.array([bool(o) for o in outs], dtype=bool)
    target_off = rows * ncls
    trans = np.where(has_out[rows], ~target_off, target_off).astype(np.int32).ravel()
    out_ptr = np.zeros(n_states + 1, dtype=np.int64)
    out_ptr[1:] = np.cumsum([len(o) for o in outs])
    out_ids = np.array([i for o in outs for i in o], dtype=np.int32)
    pat_len = np.array([len(p) for p in pats], dtype=np.int32)

    bits = np.zeros(65536, dtype=bool)
    for p in by_text:
        if len(p) == 1:
            bits[p[0] + (np.arange(256) << 8)] = True
        else:
            bits[p[0] | (p[1] << 8)] = True
    start_filter = np.packbits(bits, bitorder="little")
    return AcTables(trans=np.ascontiguousarray(trans), classes=classes, ncls=ncls,
                    out_ptr=out_ptr, out_ids=out_ids, pat_len=pat_len,
                    start_filter=start_filter, n_states=n_states)


def utf16le(pattern: bytes) -> bytes:
    """The UTF-16LE form of a pattern read as latin-1 (``b"ab"`` -> ``b"a\\0b\\0"``)."""
    return pattern.decode("latin-1").encode("utf-16-le")


class PatternSet:
    """A compiled set of byte patterns; ``find_all`` reports every occurrence.

    With ``utf16=True`` each pattern is also searched in its UTF-16LE form; those
    matches carry ids ``n + i`` (``n = len(patterns)``), and ``base_ids`` maps any id
    back to ``i``.

    >>> PatternSet([b"GET /"], utf16=True).find_all("G\\0E\\0T\\0 \\0/\\0".encode()).pattern_ids
    array([1], dtype=int32)
    """

    def __init__(self, patterns: Sequence[bytes | str], *, utf16: bool = False):
        base = [p.encode("utf-8") if isinstance(p, str) else bytes(p) for p in patterns]
        self.n_base = len(base)
        self.utf16 = utf16
        self.patterns: list[bytes] = base + ([utf16le(p) for p in base] if utf16 else [])
        self.base_ids = np.arange(len(self.patterns), dtype=np.int32) % max(self.n_base, 1)
        self.is_utf16 = np.arange(len(self.patterns)) >= self.n_base
        self.lengths = np.array([len(p) for p in self.patterns], dtype=np.int64)
        self.tables = build_tables(self.patterns)

    def __len__(self) -> int:
        return len(self.patterns)

    def __repr__(self) -> str:
        return (f"PatternSet({self.n_base} patterns{', +utf16' if self.utf16 else ''}, "
                f"{self.tables.n_states} states x {self.tables.ncls} columns)")

    def scan(self, buf, begin: int = 0, end: int | None = None, *, state: int = 0,
             base: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
        """One kernel call over ``buf[begin:end]`` (no sorting): ``(offsets, ids, state)``.

        Offsets are ``base``-relative absolute start offsets, in end-position order;
        pass the returned state with the next window to continue a stream.
        """
        if end is None:
            end = memoryview(buf).nbytes
        return _impl.kernels().ac_scan(buf, begin, end, *self.tables.kernel_args(), state, base)

    def find_all(self, source: Source, *, window: int = WINDOW, sort: bool = True) -> Matches:
        """Every occurrence of every pattern in ``source`` (a path, bytes or an mmap).

        Files are mapped ``window`` bytes at a time (read-only, never copied); the
        automaton state runs on from one window to the next. Results are sorted by
        (offset, pattern id) unless ``sort=False`` (then: by end position).
        """
        if window <= 0:
            raise InputError(f"window must be positive, got {window}")
        parts_o: list[np.ndarray] = []
        parts_i: list[np.ndarray] = []
        if isinstance(source, (str, os.PathLike)):
            self._scan_file(os.fspath(source), window, parts_o, parts_i)
        else:
            try:
                mv = memoryview(source)
            except TypeError:
                raise InputError(f"cannot scan a {type(source).__name__}: give a path, bytes or mmap") from None
            with mv:
                flat = mv if (mv.ndim == 1 and mv.itemsize == 1 and mv.c_contiguous) else mv.cast("B")
                state = 0
                for begin in range(0, flat.nbytes, window):
                    end = min(begin + window, flat.nbytes)
                    o, i, state = self.scan(flat, begin, end, state=state)
                    parts_o.append(o)
                    parts_i.append(i)
        return _collect(parts_o, parts_i, sort)

    def _scan_file(self, path: str, window: int, parts_o: list, parts_i: list) -> None:
        gran = mmap.ALLOCATIONGRANULARITY
        window = max(gran, window - window % gran)  # mmap offsets must be page-aligned
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            state = 0
            for off in range(0, size, window):
                length = min(window, size - off)
                with mmap.mmap(f.fileno(), length, access=mmap.ACCESS_READ, offset=off) as mm:
                    if hasattr(mm, "madvise"):
                        mm.madvise(mmap.MADV_SEQUENTIAL)
                    o, i, state = self.scan(mm, 0, length, state=state, base=off)
                parts_o.append(o)
                parts_i.append(i)


def _collect(parts_o: list, parts_i: list, sort: bool) -> Matches:
    if not parts_o:
        return Matches(np.empty(0, np.uint64), np.empty(0, np.int32))
    offsets = np.concatenate(parts_o) if len(parts_o) > 1 else parts_o[0]
    ids = np.concatenate(parts_i) if len(parts_i) > 1 else parts_i[0]
    if sort and offsets.shape[0] > 1:
        if int(offsets.max()) < (1 << 40) and int(ids.max()) < (1 << 24):
            # One packed uint64 key: the kernel's end-position order is nearly sorted
            # by start already, which the stable (run-merging) sort exploits; ~10x
            # faster than lexsort plus two gathers on millions of matches. Packed and
            # unpacked in place (the arrays are the kernel's, not yet anyone's): each
            # new array is fresh memory to fault in, which cost as much as the scan
            # for ten dense patterns when the caller kept the last result.
            key = offsets
            np.left_shift(key, np.uint64(24), out=key)
            np.bitwise_or(key, ids.view(np.uint32), out=key)      # ids are >= 0
            key.sort(kind="stable")
            np.bitwise_and(key, np.uint64((1 << 24) - 1), out=ids, casting="unsafe")
            np.right_shift(key, np.uint64(24), out=key)
            offsets = key
        else:
            order = np.lexsort((ids, offsets))
            offsets = offsets[order]
            ids = ids[order]
    return Matches(offsets, ids)


def find_all(patterns: Sequence[bytes | str], source: Source, *, utf16: bool = False,
             window: int = WINDOW) -> Matches:
    """One-shot ``PatternSet(patterns, utf16=utf16).find_all(source)``."""
    return PatternSet(patterns, utf16=utf16).find_all(source, window=window)
