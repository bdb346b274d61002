"""Dump a live process's memory to sparse files plus a ``manifest.json``, without stopping it.

Three ways to read (``method``):

- ``mem`` (default): ``/proc/PID/mem`` opened read-only, ``preadv`` into 1 MiB buffers.
- ``vm``: ``process_vm_readv(2)`` through ctypes.
- ``gdb``: ``gdb -nx -batch -p PID -ex 'dump memory …'`` (the seed's way); it keeps the
  target stopped while attached, so it is the slow baseline.

Each region becomes one sparse file (byte ``i`` = address ``start + i``) whose
sha256 is computed on a second thread while the next bytes are read; the
``manifest.json`` beside them (see ``manifest.py``) lists addresses, classes,
RSS, bytes present and what was skipped and why.

Every method is pagemap-aware: ``/proc/PID/pagemap`` (8 bytes per page, bit 63
present, bit 62 swapped) tells which pages exist. Pages never touched are left
as holes — reading them through /proc/PID/mem would map the zero page and make
them "present" — and swapped pages are not read, so a dump never swaps the
target back in (YARA issues #1470 and #1620 show what happens otherwise).

Example::

    >>> from offheap.dump import dump_process
    >>> m = dump_process(4242, "/tmp/dump-4242", ranges="suspects")   # doctest: +SKIP
    >>> m.present, [hex(r.start) for r in m.dumped()]                   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

from .errors import AccessDenied, DumpError, NoSuchProcess, OffheapError, ToolMissing, ZombieProcess
from .manifest import (COMPLETE, MANIFEST_NAME, PARTIAL, SKIPPED, Manifest, RegionEntry, SkippedRange,
                       save_manifest)
from . import proc, regions
from .proc import MemReader  # noqa: F401  (one reader of /proc/PID/mem; part of this module's API)
from .records import Mapping

METHODS = ("mem", "vm", "gdb")
# Pieces (runs of present pages) per gdb attach: keeps argv far below ARG_MAX.
GDB_BATCH = 1000

# Reads go through buffers of this size: 1 MiB stays in cache for the hash that follows and
# is quick to fault in (4 MiB measured up to 2x slower here).
CHUNK = 1 << 20
# pagemap is read this many entries (pages) at a time: 512 KiB of pagemap covers 256 MiB.
PAGEMAP_BATCH = 1 << 16
PM_PRESENT = 1 << 63
PM_SWAPPED = 1 << 62
# Python's pread takes a signed off_t: the vsyscall page (0xffffffffff600000) overflows it.
MAX_OFFSET = 1 << 63

Ranges = Union[None, str, Sequence[tuple[int, int]]]
Progress = Callable[[int, int, RegionEntry], None]


class ProcessExitedDuringDump(NoSuchProcess):
    """The target exited while being dumped; ``manifest`` (already saved) marks what is partial."""

    def __init__(self, pid: int, manifest: Manifest, directory: str):
        self.manifest = manifest
        super().__init__(pid, f"process {pid} exited during the dump; the partial dump and its "
                              f"manifest are in {directory}")


# --------------------------------------------------------------------------- OS errors

def translate_oserror(pid: int, what: str, exc: OSError) -> OffheapError:
    """The offheap error an OSError met while reading process ``pid`` stands for."""
    if exc.errno in (errno.ENOENT, errno.ESRCH):
        from .proc import missing_memory_error
        return missing_memory_error(pid)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return AccessDenied(pid, f"cannot {what} of process {pid}: {exc.strerror}")
    return DumpError(pid, f"cannot {what} of process {pid}: {exc.strerror or exc}")


@contextlib.contextmanager
def process_errors(pid: int, what: str) -> Iterator[None]:
    """Turn OSError raised inside the block into NoSuchProcess / AccessDenied / DumpError."""
    try:
        yield
    except OffheapError:
        raise
    except OSError as exc:
        raise translate_oserror(pid, what, exc) from None


def _is_zombie(pid: int) -> bool:
    stat = _read_stat(pid)
    return stat is not None and stat[0] in ("Z", "X")


def _read_stat(pid: int) -> Optional[tuple[str, int]]:
    """(state letter, start time in clock ticks) from /proc/PID/stat, None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb", buffering=0) as f:
            data = f.read()
    except OSError:
        return None
    # "pid (comm) S ppid …": comm may hold spaces and ')', so split at the last ')'.
    rest = data.rpartition(b")")[2].split()
    if len(rest) < 20:
        return None
    return rest[0].decode(), int(rest[19])


def _alive(pid: int, start_ticks: Optional[int]) -> bool:
    stat = _read_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return start_ticks is None or stat[1] == start_ticks


# --------------------------------------------------------------------------- readers

class _Reader:
    """Reads target memory into a caller's buffer; ``readinto`` returns the bytes read (0 = none).

    Raises OSError; EIO/EFAULT mean "this address cannot be read".
    """

    def readinto(self, addr: int, buf: memoryview) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        pass


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


@functools.lru_cache(maxsize=1)
def _process_vm_readv():
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.process_vm_readv
    fn.argtypes = [ctypes.c_int, ctypes.POINTER(_Iovec), ctypes.c_ulong,
                   ctypes.POINTER(_Iovec), ctypes.c_ulong, ctypes.c_ulong]
    fn.restype = ctypes.c_ssize_t
    return fn


class VmReader(_Reader):
    """process_vm_readv(2): one local iovec (our buffer), one remote iovec per call.

    It stops at the first page it cannot read and returns what it got before it
    (a short read), or fails with EFAULT when the very first page is unreadable.
    """

    def __init__(self, pid: int, probe_addr: Optional[int] = None):
        self.pid = pid
        self.fn = _process_vm_readv()
        if probe_addr is not None:
            # Read one byte now so "no permission" is reported before any file is written.
            # (A zero-length read would succeed unchecked: the kernel returns before mm_access.)
            try:
                self.readinto(probe_addr, memoryview(bytearray(1)))
            except OSError as exc:
                if exc.errno != errno.EFAULT:
                    raise translate_oserror(pid, "read memory (process_vm_readv)", exc) from None

    def readinto(self, addr: int, buf: memoryview) -> int:
        n = len(buf)
        cbuf = (ctypes.c_char * n).from_buffer(buf)
        local = _Iovec(ctypes.addressof(cbuf), n)
        remote = _Iovec(addr, n)
        got = self.fn(self.pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        del cbuf   # release the export of ``buf`` before anyone resizes it
        if got < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return got


# --------------------------------------------------------------------------- pagemap

@dataclass(frozen=True, slots=True)
class PageRun:
    """Consecutive pages in the same state: "present", "swapped", "absent" (never touched),
    or "gone" (pagemap stopped answering: the process exited)."""

    start: int
    end: int
    state: str


class Pagemap:
    """/proc/PID/pagemap, read in batches; ``runs(start, end)`` yields PageRuns.

    When pagemap cannot be read (some container runtimes hide it), every page
    counts as present and ``available`` is False.
    """

    def __init__(self, pid: int, page_size: int, path: Optional[str] = None):
        self.page = page_size
        try:
            # ``path``: a saved copy of a pagemap (tests, captures); default the live one.
            self.fd: Optional[int] = os.open(path or f"/proc/{pid}/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ESRCH):
                raise translate_oserror(pid, "open pagemap", exc) from None
            self.fd = None

    @property
    def available(self) -> bool:
        return self.fd is not None

    def runs(self, start: int, end: int) -> Iterator[PageRun]:
        import numpy as np   # imported here: only the dump path needs it

        if self.fd is None:
            yield PageRun(start, end, "present")
            return
        page = self.page
        first, last = start // page, (end + page - 1) // page
        cur_state, cur_start = None, start
        for batch in range(first, last, PAGEMAP_BATCH):
            count = min(PAGEMAP_BATCH, last - batch)
            data = os.pread(self.fd, count * 8, batch * 8)
            entries = np.frombuffer(data, dtype="<u8")
            if len(entries) < count:
                # pagemap reads short only when the mm is gone: the process exited.
                gone_at = max(start, (batch + len(entries)) * page)
                count = len(entries)
                entries = entries[:count]
            else:
                gone_at = None
            if count == 0:
                if cur_state is not None and gone_at > cur_start:
                    yield PageRun(cur_start, gone_at, cur_state)
                yield PageRun(gone_at, end, "gone")
                return
            state = np.where(entries & np.uint64(PM_PRESENT), 2,
                             np.where(entries & np.uint64(PM_SWAPPED), 1, 0)).astype(np.int8)
            # Indices where the state changes, plus the batch edges.
            edges = np.flatnonzero(np.diff(state)) + 1
            bounds = [0, *edges.tolist(), count]
            for a, b in zip(bounds, bounds[1:]):
                s = ("absent", "swapped", "present")[int(state[a])]
                addr_a = max(start, (batch + a) * page)
                if s != cur_state:
                    if cur_state is not None and addr_a > cur_start:
                        yield PageRun(cur_start, addr_a, cur_state)
                    cur_state, cur_start = s, addr_a
            if gone_at is not None:
                if gone_at > cur_start:
                    yield PageRun(cur_start, gone_at, cur_state)
                yield PageRun(gone_at, end, "gone")
                return
        if cur_state is not None and end > cur_start:
            yield PageRun(cur_start, end, cur_state)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


# --------------------------------------------------------------------------- planning

@dataclass(frozen=True, slots=True)
class _Planned:
    start: int
    end: int
    mapping: Optional[Mapping]
    cls: Optional[str]
    skip_reason: Optional[str] = None     # set: nothing to read here


def _load_mappings(pid: int) -> list[Mapping]:
    with process_errors(pid, "read smaps"):
        return proc.read_smaps(pid)


def _classify(mappings: list[Mapping], reader: Optional[_Reader]) -> dict[int, str]:
    """start -> class name, from regions.classify (heap_info probes through ``reader``)."""
    def probe(addr: int, size: int) -> Optional[bytes]:
        buf = bytearray(size)
        try:
            n = reader.readinto(addr, memoryview(buf))
        except OSError:
            return None
        return bytes(buf) if n == size else None

    classified = regions.classify(mappings, reader=probe if reader is not None else None)
    return {r.start: str(r.cls) for r in classified}


_SUSPECT_CLASSES = ("arena", "heap")


def _plan(mappings: list[Mapping], classes: dict[int, str], ranges: Ranges,
          pid: int) -> tuple[list[_Planned], str]:
    """The address ranges to dump, each within one mapping, in address order."""
    plan: list[_Planned] = []
    if ranges is None or ranges == "suspects":
        if not classes:
            raise DumpError(pid, "--suspects needs the region classifier (offheap.regions), "
                                 "which is not available; use --all-anon or --range")
        for m in mappings:
            if classes.get(m.start) in _SUSPECT_CLASSES or m.path == "[heap]":
                plan.append(_Planned(m.start, m.end, m, classes.get(m.start)))
        return _with_skips(plan), "suspects"
    if ranges == "all-anon":
        for m in mappings:
            if m.is_anonymous:
                plan.append(_Planned(m.start, m.end, m, classes.get(m.start)))
        return _with_skips(plan), "all-anon"
    if isinstance(ranges, str):
        raise DumpError(pid, f"unknown selection {ranges!r}: use 'suspects', 'all-anon' or (start, end) pairs")
    wanted = sorted((int(s), int(e)) for s, e in ranges)
    for s, e in wanted:
        if e <= s:
            raise DumpError(pid, f"empty range {s:#x}-{e:#x}: END must be above START")
    for (s1, e1), (s2, e2) in zip(wanted, wanted[1:]):
        if s2 < e1:
            raise DumpError(pid, f"ranges {s1:#x}-{e1:#x} and {s2:#x}-{e2:#x} overlap")
    for s, e in wanted:
        pos = s
        hit = False
        for m in mappings:
            if m.end <= s or m.start >= e:
                continue
            a, b = max(s, m.start), min(e, m.end)
            if a > pos:
                plan.append(_Planned(pos, a, None, None, "unmapped"))
            plan.append(_Planned(a, b, m, classes.get(m.start)))
            pos, hit = b, True
        if not hit:
            raise DumpError(pid, f"range {s:#x}-{e:#x} is not mapped in process {pid}")
        if pos < e:
            plan.append(_Planned(pos, e, None, None, "unmapped"))
    text = "ranges " + " ".join(f"{s:#x}-{e:#x}" for s, e in wanted)
    return _with_skips(plan), text


def _with_skips(plan: list[_Planned]) -> list[_Planned]:
    out = []
    for p in plan:
        if p.skip_reason is None:
            if p.start >= MAX_OFFSET:
                p = replace(p, skip_reason="address-too-high")
            elif p.mapping is not None and not p.mapping.readable:
                p = replace(p, skip_reason="no-read-permission")
        out.append(p)
    return out


# --------------------------------------------------------------------------- output files

def _prepare_dir(out_dir: Path, force: bool, pid: int) -> None:
    """Create ``out_dir`` 0700, or reuse an empty one / (with force) one holding an old dump."""
    if out_dir.exists() or out_dir.is_symlink():
        if not out_dir.is_dir() or out_dir.is_symlink():
            raise DumpError(pid, f"{out_dir} exists and is not a directory")
        entries = [p.name for p in out_dir.iterdir()]
        if entries:
            # Ours: a manifest, or (a dump cut short before its manifest) only our own file names.
            ours = MANIFEST_NAME in entries or all(_OUR_NAMES.match(n) for n in entries)
            if not ours:
                raise DumpError(pid, f"{out_dir} is not empty and holds no offheap dump: "
                                     "choose a new directory")
            if not force:
                raise DumpError(pid, f"{out_dir} already holds a dump: use --force "
                                     "(force=True) to overwrite it")
            _remove_old_dump(out_dir)
    else:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(out_dir, 0o700)
    # mkdir's mode is filtered by umask; chmod is not.
    os.chmod(out_dir, 0o700)


def _remove_old_dump(out_dir: Path) -> None:
    # Only names we write are removed (never what a manifest, which may be foreign, points at).
    for entry in out_dir.iterdir():
        if _OUR_NAMES.match(entry.name) and entry.is_file() and not entry.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
    shutil.rmtree(out_dir / ".gdb-tmp", ignore_errors=True)


_OUR_NAMES = re.compile(r"^(?:[0-9a-f]{16}-[0-9a-f]{16}\.bin|manifest\.json(?:\.tmp)?|\.gdb-tmp)$")


def _open_output(path: Path, force: bool) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    flags |= os.O_TRUNC if force else os.O_EXCL
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _file_name(start: int, end: int) -> str:
    return f"{start:016x}-{end:016x}.bin"


class _Hasher(threading.Thread):
    """sha256 of a region file, computed on its own thread while the next bytes are read.

    The reader takes a free buffer (``take``), fills it, writes it to the file
    and hands it over (``give``); this thread hashes buffers in order and puts
    them back on the free list. hashlib and the read/write syscalls release
    the GIL, so on two cores the hash costs almost no wall time. Holes are
    hashed as zeros so ``sha256sum FILE`` agrees.
    """

    _ZEROS = bytes(1 << 20)

    def __init__(self, buffers: Sequence[memoryview]):
        super().__init__(name="offheap-sha256", daemon=True)
        self.free: queue.SimpleQueue = queue.SimpleQueue()
        for b in buffers:
            self.free.put(b)
        self.work: queue.SimpleQueue = queue.SimpleQueue()
        self.h = hashlib.sha256()
        self.hashed = 0
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        while True:
            item = self.work.get()
            if item is None:
                return
            off, buf, n = item
            try:
                if self.error is None:
                    self._zeros_to(off)
                    self.h.update(buf[:n])
                    self.hashed += n
            except BaseException as exc:   # reported by finish()
                self.error = exc
            self.free.put(buf)

    def _zeros_to(self, offset: int) -> None:
        while self.hashed < offset:
            k = min(len(self._ZEROS), offset - self.hashed)
            self.h.update(memoryview(self._ZEROS)[:k])
            self.hashed += k

    def take(self) -> memoryview:
        return self.free.get()

    def give(self, off: int, buf: memoryview, n: int) -> None:
        self.work.put((off, buf, n))

    def finish(self, size: int) -> str:
        self.work.put(None)
        self.join()
        if self.error is not None:
            raise self.error
        self._zeros_to(size)
        return self.h.hexdigest()

    def abandon(self) -> None:
        self.work.put(None)
        self.join()


class _BufferPool:
    """Read buffers kept between dumps: fresh memory costs a page fault per 4 KiB on first use
    (~20 ms for 8 MiB measured here, a quarter of a 64 MiB dump), reused memory does not."""

    def __init__(self, count: int, size: int):
        self.count, self.size = count, size
        self._idle: list[list[memoryview]] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def lease(self) -> Iterator[list[memoryview]]:
        with self._lock:
            bufs = self._idle.pop() if self._idle else None
        if bufs is None or len(bufs[0]) != CHUNK:
            bufs = [memoryview(bytearray(CHUNK)) for _ in range(self.count)]
        try:
            yield bufs
        finally:
            with self._lock:
                if not self._idle:          # keep one set; concurrent dumps' extras are dropped
                    self._idle.append(bufs)


# Eight buffers in flight: enough that neither the reader nor the hash thread waits for the other.
_BUFFERS = _BufferPool(8, CHUNK)


class _Output:
    """A region file written in ascending address order, with the sha256 of what it stores."""

    def __init__(self, fd: int, base: int, hash: bool, buffers: Sequence[memoryview]):
        self.fd, self.base = fd, base
        self.hasher = _Hasher(buffers) if hash else None
        self._own = buffers[0]
        if self.hasher is not None:
            self.hasher.start()

    def buffer(self) -> memoryview:
        """A buffer to read into; with hashing, one the hash thread is done with."""
        return self.hasher.take() if self.hasher is not None else self._own

    def write(self, addr: int, buf: memoryview, n: int) -> None:
        """Store ``buf[:n]`` for virtual address ``addr`` (addresses only grow); the buffer is given up."""
        off = addr - self.base
        done = 0
        while done < n:
            done += os.pwrite(self.fd, buf[done:n], off + done)
        if self.hasher is not None:
            self.hasher.give(off, buf, n)

    def release(self, buf: memoryview) -> None:
        """Give back a buffer that was taken but not written."""
        if self.hasher is not None:
            self.hasher.free.put(buf)

    def finish(self, size: int) -> Optional[str]:
        """Give the file its full size (holes past the last page) and return the sha256."""
        os.ftruncate(self.fd, size)
        if self.hasher is None:
            return None
        h, self.hasher = self.hasher, None
        return h.finish(size)

    def close(self) -> None:
        if self.hasher is not None:
            self.hasher.abandon()
            self.hasher = None


# --------------------------------------------------------------------------- the dump

@dataclass
class _Budget:
    left: Optional[int]

    def take(self, want: int, page: int) -> int:
        if self.left is None:
            return want
        got = min(want, self.left - self.left % page)
        self.left -= got
        return got


class _RegionState:
    """What is known about one region while it is dumped."""

    def __init__(self, p: _Planned):
        self.p = p
        self.present = 0
        self.swapped = 0
        self.skipped: list[SkippedRange] = []
        self.exited = False

    def skip(self, start: int, end: int, reason: str) -> None:
        if self.skipped and self.skipped[-1].end == start and self.skipped[-1].reason == reason:
            start = self.skipped.pop().start
        self.skipped.append(SkippedRange(start, end, reason))


def _read_run(reader: _Reader, out: _Output, st: _RegionState, start: int, end: int, page: int,
              pid: int, start_ticks: Optional[int]) -> None:
    """Copy target bytes start..end into the region file; unreadable pages are recorded, not fatal."""
    pos = start
    while pos < end:
        buf = out.buffer()
        want = min(len(buf), end - pos)
        try:
            n = reader.readinto(pos, buf[:want])
        except OSError as exc:
            if exc.errno == errno.ESRCH:
                n = 0
            elif exc.errno in (errno.EIO, errno.EFAULT, errno.ENOMEM):
                n = -1
            elif exc.errno in (errno.EACCES, errno.EPERM):
                out.release(buf)
                raise translate_oserror(pid, "read memory", exc) from None
            else:
                out.release(buf)
                raise
        if n > 0:
            out.write(pos, buf, n)
            st.present += n
            pos += n
            continue
        if not _alive(pid, start_ticks):
            out.release(buf)
            st.exited = True
            st.skip(pos, end, "process-exited")
            return
        # Nothing at pos (EIO from mem, EFAULT from vm, or a short read at an edge):
        # try the rest of this page alone before giving it up.
        nxt = min(end, (pos // page + 1) * page)
        try:
            n = reader.readinto(pos, buf[:nxt - pos])
        except OSError:
            n = 0
        if n > 0:
            out.write(pos, buf, n)
            st.present += n
            pos += n
            continue
        out.release(buf)
        st.skip(pos, nxt, "unreadable")
        pos = nxt


def _entry(st: _RegionState, file: Optional[str], sha: Optional[str], status: Optional[str] = None) -> RegionEntry:
    p = st.p
    m = p.mapping
    whole = m is not None and m.start == p.start and m.end == p.end
    if status is None:
        if file is None:
            status = SKIPPED
        elif st.exited or any(s.reason != "swapped" for s in st.skipped):
            status = PARTIAL
        else:
            status = COMPLETE
    return RegionEntry(
        start=p.start, end=p.end, perms=m.perms if m else "", path=m.path if m else "",
        cls=p.cls, rss=(m.rss if (whole and m.has_smaps) else None), present=st.present,
        swapped=st.swapped, file=file, sha256=sha, status=status,
        skipped=tuple(sorted(st.skipped, key=lambda k: k.start)),
    )


def dump_process(pid: int, out_dir: Union[str, os.PathLike[str]], ranges: Ranges = None,
                 method: str = "mem", max_bytes: Optional[int] = None, force: bool = False,
                 progress: Optional[Progress] = None, gdb_timeout: Optional[float] = None,
                 checksum: bool = True) -> Manifest:
    """Dump memory of live process ``pid`` into ``out_dir`` and return its manifest.

    ``ranges``: ``"suspects"`` (default: glibc arena heaps and ``[heap]``, as
    ``regions.classify`` finds them), ``"all-anon"`` (every anonymous mapping),
    or a sequence of ``(start, end)`` address pairs (end exclusive).
    ``max_bytes`` caps the bytes read (resident pages). ``checksum=False`` leaves
    ``sha256`` out (hashing is the costliest step after the copy itself).
    ``progress(i, n, entry)`` is called after each region. Raises NoSuchProcess, ZombieProcess,
    AccessDenied (with a CAP_SYS_PTRACE / ptrace_scope hint) or DumpError; when
    the process exits mid-dump the manifest is saved, marked incomplete, and
    ProcessExitedDuringDump (a NoSuchProcess) carries it.

    >>> m = dump_process(4242, "/tmp/d", ranges=[(0x7f0000000000, 0x7f0004000000)])  # doctest: +SKIP
    """
    if method not in METHODS:
        raise DumpError(pid, f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise NoSuchProcess(pid, f"not a PID: {pid!r}")
    if max_bytes is not None and max_bytes < 0:
        raise DumpError(pid, "max_bytes must be >= 0")
    out = Path(out_dir)
    t0 = time.monotonic()
    page = os.sysconf("SC_PAGE_SIZE")

    stat = _read_stat(pid)
    if stat is None:
        raise NoSuchProcess(pid)
    if stat[0] in ("Z", "X"):
        raise ZombieProcess(pid)
    start_ticks = stat[1]
    cmdline = proc.read_cmdline(pid)
    mappings = _load_mappings(pid)
    if not mappings and _is_zombie(pid):
        raise ZombieProcess(pid)

    # Open the target before touching the disk: "access denied" must not leave a directory.
    if method == "vm":
        probe = next((m.start for m in mappings if m.readable and m.start < MAX_OFFSET), None)
        reader: _Reader = VmReader(pid, probe)
    else:
        reader = MemReader(pid)
    pagemap = None
    try:
        pagemap = Pagemap(pid, page)
        classes = _classify(mappings, reader)
        plan, selection = _plan(mappings, classes, ranges, pid)
        if not any(p.skip_reason is None for p in plan):
            raise DumpError(pid, f"nothing readable to dump in process {pid} ({selection})")
        if method == "gdb":
            _gdb_path()
            # A second tracer makes gdb run on without an inferior and write nothing: say so first.
            tracer = _tracer_of(pid)
            if tracer:
                raise _already_traced(pid, tracer)
        _prepare_dir(out, force, pid)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")

        notes = [] if pagemap.available else ["pagemap unreadable: every page was read"]
        with _BUFFERS.lease() as buffers:
            if method == "gdb":
                entries, stopped, exited = _dump_gdb(pid, out, plan, pagemap, page, max_bytes, force,
                                                     start_ticks, progress, gdb_timeout, checksum, buffers)
            else:
                entries, exited = _dump_direct(pid, out, plan, reader, pagemap, page, max_bytes, force,
                                               start_ticks, progress, checksum, buffers)
                stopped = 0.0
        if max_bytes is not None and any(s.reason == "max-bytes" for e in entries for s in e.skipped):
            notes.append(f"stopped at max_bytes={max_bytes}")
        complete = not exited and all(e.status == COMPLETE for e in entries
                                      if not (e.status == SKIPPED and e.skipped
                                              and e.skipped[0].reason in ("no-read-permission",
                                                                          "address-too-high", "unmapped")))
        swapped = sum(e.swapped for e in entries)
        if swapped:
            notes.append(f"{swapped} bytes were swapped out and not read (reading would swap them in)")
        if exited:
            notes.append("process exited during the dump")
        m = Manifest(
            pid=pid, cmdline=cmdline, created=created, method=method, regions=tuple(entries),
            complete=complete, stopped_seconds=round(stopped, 6),
            elapsed_seconds=round(time.monotonic() - t0, 6), page_size=page,
            start_time_ticks=start_ticks, source="live", selection=selection, note="; ".join(notes),
            directory=str(out))
        save_manifest(m, out)
        if exited:
            raise ProcessExitedDuringDump(pid, m, str(out))
        return m
    finally:
        reader.close()
        if pagemap is not None:
            pagemap.close()


def _runs_to_read(pagemap: Pagemap, st: _RegionState, budget: _Budget, page: int, pid: int,
                  start_ticks: Optional[int], record_exit: bool) -> Iterator[tuple[int, int]]:
    """The (start, end) runs of a region to read: present pages, within the byte budget.

    Untouched pages stay holes; swapped pages are recorded as skipped, never read (that
    would swap them back in); past the budget the rest is skipped as "max-bytes". When
    the process is gone, ``st.exited`` is set (and, with ``record_exit``, the rest of
    the region recorded as "process-exited"). Reads may also set ``st.exited``.
    """
    p = st.p
    for run in pagemap.runs(p.start, p.end):
        if st.exited:
            return
        if run.state == "gone" and not _alive(pid, start_ticks):
            st.exited = True
            if record_exit:
                st.skip(run.start, p.end, "process-exited")
            return
        if run.state == "swapped":
            st.swapped += run.end - run.start
            st.skip(run.start, run.end, "swapped")
            continue
        if run.state == "absent":
            continue
        take = budget.take(run.end - run.start, page)
        if take:
            yield run.start, run.start + take
        if take < run.end - run.start:
            st.skip(run.start + take, p.end, "max-bytes")
            return


def _dump_direct(pid: int, out: Path, plan: list[_Planned], reader: _Reader, pagemap: Pagemap,
                 page: int, max_bytes: Optional[int], force: bool, start_ticks: Optional[int],
                 progress: Optional[Progress], checksum: bool,
                 buffers: Sequence[memoryview]) -> tuple[list[RegionEntry], bool]:
    budget = _Budget(max_bytes)
    entries: list[RegionEntry] = []
    exited = False
    for i, p in enumerate(plan):
        st = _RegionState(p)
        if p.skip_reason is not None or exited or budget.left == 0:
            reason = p.skip_reason or ("process-exited" if exited else "max-bytes")
            st.skip(p.start, p.end, reason)
            entries.append(_entry(st, None, None))
        else:
            name = _file_name(p.start, p.end)
            fd = _open_output(out / name, force)
            sink = _Output(fd, p.start, checksum, buffers)
            try:
                for start, end in _runs_to_read(pagemap, st, budget, page, pid, start_ticks,
                                                record_exit=True):
                    _read_run(reader, sink, st, start, end, page, pid, start_ticks)
                # Holes past the last present page: the file still spans the whole region.
                sha = sink.finish(p.end - p.start)
            finally:
                sink.close()
                os.close(fd)
            exited = st.exited
            entries.append(_entry(st, name, sha))
        if progress is not None:
            progress(i, len(plan), entries[-1])
    return entries, exited


# --------------------------------------------------------------------------- gdb

def _gdb_path() -> str:
    gdb = shutil.which("gdb")
    if gdb is None:
        raise ToolMissing("gdb is not installed (apt-get install gdb), or use --method mem")
    return gdb


class _TracerWatch:
    """Polls /proc/PID/status TracerPid while gdb runs: how long the target really was attached."""

    def __init__(self, pid: int, interval: float = 0.002):
        self.pid, self.interval = pid, interval
        self.first: Optional[float] = None
        self.last: Optional[float] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _traced(self) -> bool:
        return _tracer_of(self.pid) != 0

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            if self._traced():
                if self.first is None:
                    self.first = now
                self.last = time.monotonic()
            self._stop.wait(self.interval)

    def __enter__(self) -> "_TracerWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def seconds(self) -> Optional[float]:
        if self.first is None or self.last is None:
            return None
        return self.last - self.first


def _dump_gdb(pid: int, out: Path, plan: list[_Planned], pagemap: Pagemap, page: int,
              max_bytes: Optional[int], force: bool, start_ticks: Optional[int],
              progress: Optional[Progress], timeout: Optional[float], checksum: bool,
              buffers: Sequence[memoryview]
              ) -> tuple[list[RegionEntry], float, bool]:
    """One gdb attach dumps every present run to a piece file; pieces are then laid into sparse files."""
    gdb = _gdb_path()
    budget = _Budget(max_bytes)
    states = [_RegionState(p) for p in plan]
    pieces: list[tuple[int, int, int, str]] = []      # (region index, start, end, piece name)
    exited = False
    for i, st in enumerate(states):
        p = st.p
        if p.skip_reason is not None or budget.left == 0 or exited:
            st.skip(p.start, p.end, p.skip_reason or ("process-exited" if exited else "max-bytes"))
            continue
        for start, end in _runs_to_read(pagemap, st, budget, page, pid, start_ticks, record_exit=False):
            pieces.append((i, start, end, f"p{len(pieces):06d}.bin"))
        exited = st.exited

    if exited:
        # Gone before gdb could attach: nothing of it can be read any more.
        for st in states:
            if not st.skipped or st.skipped[-1].reason != "process-exited":
                st.skip(st.p.start, st.p.end, "process-exited")
        entries = [_entry(st, None, None) for st in states]
        return entries, 0.0, True

    tmp = out / ".gdb-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.mkdir(tmp, 0o700)
    os.chmod(tmp, 0o700)
    stopped = 0.0
    try:
        for k in range(0, len(pieces), GDB_BATCH):
            batch = pieces[k:k + GDB_BATCH]
            seconds, res = _run_gdb(gdb, pid, batch, tmp, timeout)
            stopped += seconds
            missing = [pc for pc in batch if not (tmp / pc[3]).is_file()]
            if missing and not _alive(pid, start_ticks):
                exited = True
            elif len(missing) == len(pieces):
                raise _gdb_error(pid, res)      # nothing at all: gdb could not attach
            for pc in missing:
                # gdb said "Cannot access memory" for this piece (or the target died); keep the rest.
                states[pc[0]].skip(pc[1], pc[2], "process-exited" if exited else "unreadable")
            if exited:
                for pc in pieces[k + GDB_BATCH:]:
                    states[pc[0]].skip(pc[1], pc[2], "process-exited")
                break
        entries = _assemble(out, states, pieces, tmp, force, checksum, buffers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for i, e in enumerate(entries):
        if progress is not None:
            progress(i, len(entries), e)
    if exited:
        entries = [replace(e, status=PARTIAL) if e.file else e for e in entries]
    return entries, stopped, exited


def _run_gdb(gdb: str, pid: int, batch: list[tuple[int, int, int, str]], tmp: Path,
             timeout: Optional[float]) -> tuple[float, subprocess.CompletedProcess]:
    """One gdb attach dumping ``batch``; returns (seconds the target was traced, gdb's result).

    One ``-ex`` per piece: an error in one (``Cannot access memory``) does not stop
    the next, unlike a ``-x`` script. Piece names are relative to gdb's cwd, so no
    path needs quoting for gdb's parser; umask 077 keeps gdb's files 0600.
    """
    argv = [gdb, "-nx", "-batch", "-iex", "set debuginfod enabled off",
            "-iex", "set auto-solib-add off", "-p", str(pid)]
    for _, s, e, name in batch:
        argv += ["-ex", f"dump binary memory {name} {s:#x} {e:#x}"]
    total = sum(e - s for _, s, e, _ in batch)
    limit = timeout if timeout is not None else 60.0 + total / 20e6
    t = time.monotonic()
    with _TracerWatch(pid) as watch:
        try:
            res = subprocess.run(argv, cwd=tmp, stdin=subprocess.DEVNULL, capture_output=True,
                                 timeout=limit, umask=0o077)
        except subprocess.TimeoutExpired:
            raise DumpError(pid, f"gdb did not finish within {limit:.0f} s") from None
    wall = time.monotonic() - t
    return (watch.seconds if watch.seconds is not None else wall), res


def _tracer_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb", buffering=0) as f:
            for line in f.read().splitlines():
                if line.startswith(b"TracerPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _already_traced(pid: int, tracer: int) -> DumpError:
    return DumpError(pid, f"process {pid} is already traced by PID {tracer} (a debugger or strace?): "
                          "gdb cannot attach; use --method mem")


def _gdb_error(pid: int, res: subprocess.CompletedProcess) -> OffheapError:
    err = (res.stderr or b"").decode(errors="replace").strip()
    text = err.lower()
    tracer = _tracer_of(pid)
    if tracer:
        return _already_traced(pid, tracer)
    if "operation not permitted" in text or "ptrace" in text and "permission" in text:
        return AccessDenied(pid, f"gdb could not attach to process {pid}")
    if "no such process" in text:
        return NoSuchProcess(pid)
    last = err.splitlines()[-1] if err else f"exit code {res.returncode}"
    if "already being traced" in text or res.returncode != 0 and "attach" in text:
        return DumpError(pid, f"gdb could not attach to process {pid} (another tracer?): {last}")
    return DumpError(pid, f"gdb wrote no dump (exit code {res.returncode}): {last}")


def _assemble(out: Path, states: list[_RegionState], pieces: list[tuple[int, int, int, str]],
              tmp: Path, force: bool, checksum: bool, buffers: Sequence[memoryview]) -> list[RegionEntry]:
    by_region: dict[int, list[tuple[int, int, str]]] = {}
    for i, s, e, name in pieces:
        by_region.setdefault(i, []).append((s, e, name))
    entries = []
    for i, st in enumerate(states):
        p = st.p
        if p.skip_reason is not None or (i not in by_region and st.skipped
                                         and st.skipped[0].start == p.start
                                         and st.skipped[0].reason == "max-bytes"):
            entries.append(_entry(st, None, None))
            continue
        name = _file_name(p.start, p.end)
        fd = _open_output(out / name, force)
        sink = _Output(fd, p.start, checksum, buffers)
        try:
            for s, e, piece in by_region.get(i, ()):
                path = tmp / piece
                if not path.is_file():
                    continue
                with open(path, "rb", buffering=0) as f:
                    pos = s
                    while pos < e:
                        piece_buf = sink.buffer()
                        n = f.readinto(piece_buf[:e - pos])
                        if not n:
                            sink.release(piece_buf)
                            break
                        sink.write(pos, piece_buf, n)
                        st.present += n
                        pos += n
                if pos < e:
                    st.skip(pos, e, "unreadable")
            sha = sink.finish(p.end - p.start)
        finally:
            sink.close()
            os.close(fd)
        entries.append(_entry(st, name, sha))
    return entries
