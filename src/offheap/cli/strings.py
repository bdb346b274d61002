"""``offheap strings``: a drop-in for GNU ``strings -a`` whose stdout is byte-identical.

Differences from GNU strings: ``-`` names stdin explicitly (GNU treats it as ``-a``),
and an empty file or one too short to hold a string is reported on stderr with a
non-zero exit (GNU prints nothing and exits 0). Only ``-a`` (whole file) is offered.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import sys
import threading
from typing import Iterator

import numpy as np

from .. import _impl
from ..errors import InputError, OffheapError
from .._strings_py import ENCODINGS
from ..scan import DEFAULT_WINDOW, _check_size, _open_file, _file_windows, check_options, stream_windows
from . import Command, CommandError

STDIN_NAME = "{standard input}"   # what GNU strings calls stdin in -f output
_RADIX = {"o": 8, "d": 10, "x": 16}
FORMAT_BATCH = 8192     # strings rendered per output piece


def _unit_chars(w, start: int, a: int, b: int, unit: int, lane: int) -> bytes:
    """Characters of the units of a chain starting at ``start`` whose unit starts lie in [a, b),
    read from window ``w`` (absolute offsets)."""
    if b <= a:
        return b""
    first = start + -(-(a - start) // unit) * unit
    rel = first - w.base
    if rel >= len(w.buf):
        return b""
    if unit == 1:
        return bytes(w.buf[rel:b - w.base])
    return bytes(w.buf[rel + lane:b - w.base:unit])


class StringsWriter:
    """Renders one file's strings as GNU strings does, window by window.

    Strings wholly inside a window are rendered by the ``format_strings`` kernel. The
    one string that may reach across a window edge is streamed: printed as soon as it
    is known to be long enough, then continued, so neither memory nor latency depend
    on its length.
    """

    def __init__(self, name: bytes, min_len: int, encoding: str, whitespace: bool,
                 radix: int, print_name: bool, sep: bytes):
        self.min_len = min_len
        self.encoding = encoding
        self.whitespace = whitespace
        self.radix = radix
        self.prefix = name + b": " if print_name else b""
        self.sep = sep
        self.unit, self.lane = ENCODINGS[encoding]
        self.state = np.zeros(4, dtype=np.uint64)
        self.open_start: int | None = None   # start of the run open at the last window end
        self.open_printed = False            # its header and text so far are printed
        self.carry = b""                     # its text not yet printed (while shorter than min_len)

    def header(self, offset: int) -> bytes:
        fmt = {8: b"%7o ", 10: b"%7d ", 16: b"%7x "}.get(self.radix)
        return self.prefix + (fmt % offset if fmt else b"")

    def feed(self, w) -> list[bytes]:
        """The output for window ``w``, as chunks to write in order."""
        out: list[bytes] = []
        kernels = _impl.kernels()
        offs, lens = kernels.find_strings(w.buf, w.begin, w.end, w.final, self.min_len,
                                          self.encoding, self.whitespace, w.base, self.state)
        wstart = w.base + w.begin
        first = 0
        if len(offs) and int(offs[0]) < wstart:
            # the run carried from the previous window ended here
            s, ln = int(offs[0]), int(lens[0])
            tail = _unit_chars(w, s, wstart, s + ln, self.unit, self.lane)
            if self.open_printed and self.open_start == s:
                out.append(tail + self.sep)
            else:
                out.append(self.header(s) + self.carry + tail + self.sep)
            first = 1
        # Pieces of ~1 MB: malloc reuses their memory from one to the next, where one
        # piece per 64 MiB window would be fresh pages to fault in every time.
        for i in range(first, len(offs), FORMAT_BATCH):
            out.append(kernels.format_strings(w.buf, w.base, offs[i:i + FORMAT_BATCH], lens[i:i + FORMAT_BATCH],
                                              self.encoding, self.radix, self.prefix, self.sep))
        if self.state[0] and not w.final:
            s = int(self.state[1])
            units = int(self.state[2])
            seg = _unit_chars(w, s, max(s, wstart), s + units * self.unit, self.unit, self.lane)
            if self.open_start != s:
                self.open_printed, self.carry = False, b""
            self.open_start = s
            if self.open_printed:
                out.append(seg)
            else:
                self.carry += seg
                if units >= self.min_len:
                    out.append(self.header(s) + self.carry)
                    self.open_printed, self.carry = True, b""
        else:
            self.open_start, self.open_printed, self.carry = None, False, b""
        return out


_END = object()


def _in_background(chunks: Iterator[list[bytes]], depth: int = 2) -> Iterator[list[bytes]]:
    """Run ``chunks`` (scan + format, GIL released in the kernels) in a thread, at most
    ``depth`` windows ahead, so scanning the next window overlaps writing this one."""
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in chunks:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        pass
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(exc)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()

    worker = threading.Thread(target=produce, name="offheap-strings", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()




def _c_integer(text: str) -> int:
    """-n as GNU strings reads it (strtoul, base 0): 0x10 is 16, 010 is 8, ' 9' is 9."""
    t = text.lstrip()
    sign = -1 if t.startswith("-") else 1
    t = t[1:] if t[:1] in "+-" else t
    try:
        if t[:2].lower() == "0x":
            value = int(t[2:], 16)
        elif len(t) > 1 and t.startswith("0"):
            value = int(t[1:], 8)
        else:
            value = int(t, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer argument {text}") from None
    return sign * value


class StringsCommand(Command):
    name = "strings"
    help = "print printable strings, byte-identical to GNU strings -a"

    def normalize_argv(self, argv: list[str]) -> list[str]:
        # GNU strings accepts -NUMBER for -n NUMBER (e.g. `strings -10`).
        return ["-n" + a[1:] if re.fullmatch(r"-\d+", a) else a for a in argv]

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("files", nargs="*", metavar="FILE", help="files to scan; - or none for stdin")
        p.add_argument("-a", "--all", action="store_true", help="scan whole files (always on)")
        p.add_argument("-n", "--bytes", dest="min_len", type=_c_integer, default=4, metavar="N",
                       help="minimum string length (default 4)")
        p.add_argument("-t", "--radix", choices=["o", "d", "x"], help="print offsets in base 8, 10 or 16")
        p.add_argument("-o", dest="radix", action="store_const", const="o", help="alias for -t o")
        p.add_argument("-e", "--encoding", default="s", metavar="{s,S,b,l,B,L}",
                       help="s 7-bit, S 8-bit, b/l 16-bit big/little endian, B/L 32-bit")
        p.add_argument("-w", "--include-all-whitespace", dest="whitespace", action="store_true",
                       help="count all whitespace as string characters")
        p.add_argument("-f", "--print-file-name", dest="print_name", action="store_true",
                       help="print the file name before each string")
        p.add_argument("-s", "--output-separator", dest="sep", metavar="SEP",
                       help="string printed after each string instead of a newline")
        p.add_argument("--window", type=int, default=DEFAULT_WINDOW, help=argparse.SUPPRESS)

    def run(self, args: argparse.Namespace) -> int:
        try:
            check_options(args.min_len, args.encoding)
        except InputError as exc:
            raise CommandError(str(exc), exit_code=1) from None
        sep = os.fsencode(args.sep) if args.sep is not None else b"\n"
        radix = _RADIX[args.radix] if args.radix else 0
        out = sys.stdout.buffer
        status = 0
        for name in args.files or ["-"]:
            try:
                self._one(name, out, args, radix, sep)
            except (OSError, OffheapError) as exc:
                if isinstance(exc, BrokenPipeError):
                    raise
                out.flush()
                if isinstance(exc, OSError):
                    msg = f"{name}: {exc.strerror or exc}"
                else:
                    msg = str(exc)
                print(f"offheap strings: {msg}", file=sys.stderr)
                status = 1
        out.flush()
        return status

    def _one(self, name: str, out, args, radix: int, sep: bytes) -> None:
        stdin = name == "-"
        label = STDIN_NAME.encode() if stdin else os.fsencode(name)
        writer = StringsWriter(label, args.min_len, args.encoding, args.whitespace,
                               radix, args.print_name, sep)
        if stdin:
            chunks = self._stdin_chunks(writer, args)
        else:
            chunks = self._file_chunks(name, writer, args)
        for parts in _in_background(chunks):
            for part in parts:
                out.write(part)

    @staticmethod
    def _stdin_chunks(writer: StringsWriter, args) -> Iterator[list[bytes]]:
        seen = 0
        for w in stream_windows(sys.stdin.buffer, args.window):
            seen += w.end - w.begin
            if w.final:
                _check_size(STDIN_NAME, seen, args.min_len, writer.unit)
            yield writer.feed(w)

    @staticmethod
    def _file_chunks(name: str, writer: StringsWriter, args) -> Iterator[list[bytes]]:
        fd, size = _open_file(name)
        try:
            _check_size(name, size, args.min_len, writer.unit)
            for w in _file_windows(fd, size, args.window):
                yield writer.feed(w)
        finally:
            os.close(fd)


COMMAND = StringsCommand()

