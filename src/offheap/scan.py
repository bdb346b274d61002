"""Printable strings in dumps, as GNU ``strings -a`` finds them, window by window.

``strings()`` returns every string of a source as numpy arrays; ``iter_strings()``
yields them in batches, one per memory window, so a dump larger than RAM scans in
bounded memory. The text of a string is read from the source only when asked for.

>>> s = strings(b"\\x00\\x01hello world\\x00ab\\x00", min_len=4)
>>> s.offsets.tolist(), s.lengths.tolist(), s.text(0)
([2], [11], b'hello world')
"""

from __future__ import annotations

import mmap
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Union

import numpy as np

from . import _impl
from ._strings_py import ENCODINGS
from .errors import EmptyInputError, InputError, InputTooShortError

__all__ = ["strings", "iter_strings", "Strings", "Window", "windows", "DEFAULT_WINDOW"]

# 64 MiB windows: big enough that per-window overhead vanishes, small enough that
# peak RSS stays bounded whatever the dump size (the mapped pages are released as
# each window is unmapped).
DEFAULT_WINDOW = 64 << 20
# Bytes mapped past a window's end so the last multi-byte units are whole.
LOOKAHEAD = 64

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, mmap.mmap]


@dataclass
class Window:
    """A piece of a source: units starting in ``buf[begin:end]`` belong to it.

    ``base`` is the absolute offset of ``buf[0]``; ``buf`` may hold up to
    ``LOOKAHEAD`` bytes past ``end``. ``final`` marks the last window.
    """

    buf: memoryview
    base: int
    begin: int
    end: int
    final: bool


MAX_MIN_LEN = (1 << 31) - 1


def check_options(min_len: int, encoding: str) -> int:
    """Validate options; return the unit size in bytes."""
    if isinstance(min_len, bool) or not isinstance(min_len, (int, np.integer)):
        raise InputError(f"minimum string length must be an integer, not {min_len!r}")
    if min_len < 1:
        raise InputError(f"invalid minimum string length {min_len}: it must be at least 1")
    if min_len > MAX_MIN_LEN:
        # The kernels count in a C int (and GNU strings would wrap it).
        raise InputError(f"invalid minimum string length {min_len}: it must be at most {MAX_MIN_LEN}")
    if encoding not in ENCODINGS:
        raise InputError(f"unknown encoding {encoding!r}: use one of s, S, b, l, B, L")
    return ENCODINGS[encoding][0]


def _is_path(source) -> bool:
    return isinstance(source, (str, os.PathLike))


def _open_file(path) -> tuple[int, int]:
    """Open a dump read-only; return (fd, size). Raises OSError subclasses or InputError."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(21, "is a directory", os.fspath(path))
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{os.fspath(path)}: not a regular file (use the CLI's stdin mode for pipes)")
        return fd, st.st_size
    except BaseException:
        os.close(fd)
        raise


def _check_size(name: str, size: int, min_len: int, unit: int) -> None:
    if size == 0:
        raise EmptyInputError(f"{name}: empty file: no bytes to scan")
    if size < min_len * unit:
        raise InputTooShortError(
            f"{name}: {size} bytes is shorter than the minimum string length "
            f"({min_len} x {unit}-byte units): no string can be found")


def _file_windows(fd: int, size: int, window: int) -> Iterator[Window]:
    gran = mmap.ALLOCATIONGRANULARITY
    if window % gran:
        window = (window // gran + 1) * gran
    start = 0
    while start < size:
        end = min(size, start + window)
        length = min(size - start, window + LOOKAHEAD)
        mm = mmap.mmap(fd, length, prot=mmap.PROT_READ, offset=start)
        if hasattr(mm, "madvise"):
            mm.madvise(mmap.MADV_SEQUENTIAL)
        mv = memoryview(mm)
        try:
            yield Window(mv, start, 0, end - start, end >= size)
        except BaseException:
            # Ctrl-C or an early close() while the caller still holds views of this window:
            # release()/close() would raise BufferError over the real exception; GC unmaps.
            for close in (mv.release, mm.close):
                try:
                    close()
                except BufferError:
                    pass
            raise
        mv.release()
        mm.close()
        start = end


def _buffer_windows(buf: memoryview, window: int) -> Iterator[Window]:
    size = len(buf)
    start = 0
    while True:
        end = min(size, start + window)
        yield Window(buf[start:min(size, end + LOOKAHEAD)], start, 0, end - start, end >= size)
        if end >= size:
            return
        start = end


def stream_windows(stream: BinaryIO, window: int = DEFAULT_WINDOW) -> Iterator[Window]:
    """Windows over a pipe or other unseekable stream (the CLI's stdin)."""
    base = 0
    pending = b""
    eof = False
    while True:
        chunks = [pending]
        have = len(pending)
        while not eof and have < window + LOOKAHEAD:
            chunk = stream.read(window + LOOKAHEAD - have)
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
            have += len(chunk)
        data = b"".join(chunks)
        if eof:
            yield Window(memoryview(data), base, 0, len(data), True)
            return
        end = len(data) - LOOKAHEAD
        yield Window(memoryview(data), base, 0, end, False)
        pending = data[end:]
        base += end


def windows(source: Source, window: int = DEFAULT_WINDOW) -> Iterator[Window]:
    """Windows over a path, a bytes-like object or an mmap."""
    if window < LOOKAHEAD:
        raise InputError(f"window must be at least {LOOKAHEAD} bytes")
    if _is_path(source):
        fd, size = _open_file(source)
        try:
            yield from _file_windows(fd, size, window)
        finally:
            os.close(fd)
    else:
        with memoryview(source) as mv:
            yield from _buffer_windows(mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv, window)


def _source_size(source: Source) -> int:
    if _is_path(source):
        fd, size = _open_file(source)
        os.close(fd)
        return size
    with memoryview(source) as mv:
        return mv.nbytes


class Strings:
    """Strings found in a source: ``offsets`` (uint64, absolute) and ``lengths``
    (uint64, bytes = characters x unit size), plus the text on demand.

    ``text(i)`` returns the characters of string ``i`` as bytes (for 16/32-bit
    encodings, the character byte of each unit), read from the source.
    """

    def __init__(self, source: Source, offsets: np.ndarray, lengths: np.ndarray, encoding: str):
        self.source = source
        self.offsets = offsets
        self.lengths = lengths
        self.encoding = encoding
        self.unit_size, self._lane = ENCODINGS[encoding]

    def __len__(self) -> int:
        return len(self.offsets)

    def __repr__(self) -> str:
        return f"<Strings: {len(self)} strings, {int(self.lengths.sum())} bytes, encoding {self.encoding!r}>"

    @property
    def total_bytes(self) -> int:
        """Bytes of the source covered by strings."""
        return int(self.lengths.sum(dtype=np.uint64))

    def _read(self, offset: int, length: int) -> bytes:
        if _is_path(self.source):
            with open(self.source, "rb", buffering=0) as f:
                return os.pread(f.fileno(), length, offset)
        with memoryview(self.source) as mv:
            return bytes(mv.cast("B")[offset:offset + length])

    def text(self, i: int) -> bytes:
        raw = self._read(int(self.offsets[i]), int(self.lengths[i]))
        return raw[self._lane::self.unit_size] if self.unit_size > 1 else raw

    def texts(self) -> Iterator[bytes]:
        """Every string's text, in order (one Python object per string: for small results)."""
        if _is_path(self.source):
            with open(self.source, "rb", buffering=0) as f:
                fd = f.fileno()
                for off, ln in zip(self.offsets.tolist(), self.lengths.tolist()):
                    raw = os.pread(fd, ln, off)
                    yield raw[self._lane::self.unit_size] if self.unit_size > 1 else raw
        else:
            for i in range(len(self)):
                yield self.text(i)


def iter_strings(source: Source, min_len: int = 4, encoding: str = "s", whitespace: bool = False,
                 window: int = DEFAULT_WINDOW) -> Iterator[Strings]:
    """Yield the strings of ``source`` in batches, one per window, in offset order.

    A string crossing a window edge is reported once, whole, in the batch of the
    window where it ends. Memory stays bounded by the window size.
    """
    unit = check_options(min_len, encoding)
    name = os.fspath(source) if _is_path(source) else "buffer"
    _check_size(name, _source_size(source), min_len, unit)
    state = np.zeros(4, dtype=np.uint64)
    for w in windows(source, window):
        offs, lens = _impl.kernels().find_strings(
            w.buf, w.begin, w.end, w.final, min_len, encoding, whitespace, w.base, state)
        yield Strings(source, offs, lens, encoding)


def strings(source: Source, min_len: int = 4, encoding: str = "s", whitespace: bool = False,
            window: int = DEFAULT_WINDOW) -> Strings:
    """All printable strings of ``source`` (a path, bytes-like object or mmap), exactly
    as ``strings -a -n MIN_LEN -e ENCODING [-w]`` finds them.

    Raises ``FileNotFoundError``/``IsADirectoryError``/``PermissionError`` for paths
    that cannot be read, ``EmptyInputError`` for an empty source,
    ``InputTooShortError`` when no string can fit, and ``InputError`` for bad options.

    >>> strings(b"ab\\x00abcd\\x00").offsets.tolist()
    [3]
    """
    batches = list(iter_strings(source, min_len, encoding, whitespace, window))
    offs = np.concatenate([b.offsets for b in batches]) if batches else np.empty(0, np.uint64)
    lens = np.concatenate([b.lengths for b in batches]) if batches else np.empty(0, np.uint64)
    return Strings(source, offs, lens, encoding)
