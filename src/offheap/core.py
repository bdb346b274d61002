"""ELF core files (``gcore`` or kernel core dumps) as a memory source.

A core's ``PT_LOAD`` program headers are the process's mappings: virtual
address, size in memory, and where their bytes sit in the file. ``CoreFile``
parses the ELF64 header, the program headers and the notes that name the
process (``NT_PRPSINFO``) and the files behind mappings (``NT_FILE``, written by
the kernel, not by gdb), and reads a segment's bytes by virtual address.
``as_manifest()`` describes the core like a dump directory, so anything that
scans a dump + manifest scans a core the same way.

Example::

    >>> with CoreFile("core.4242") as core:                       # doctest: +SKIP
    ...     for seg in core.segments:
    ...         data = core.read(seg)                            # bytes of seg.start..seg.end
    ...     hit = core.read_at(0x7f0000001000, 64)
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Union

from .errors import InputError, ParseError
from .manifest import COMPLETE, SKIPPED, Manifest, RegionEntry, SkippedRange

ELF_MAGIC = b"\x7fELF"
ELFCLASS64 = 2
ET_CORE = 4
PT_LOAD = 1
PT_NOTE = 4
PN_XNUM = 0xFFFF
PF_X, PF_W, PF_R = 1, 2, 4
NT_PRPSINFO = 3
NT_FILE = 0x46494C45          # "FILE"
# struct elf_prpsinfo on 64-bit Linux: pr_pid at 24, pr_fname[16] at 40, pr_psargs[80] at 56.
_PRPSINFO_SIZE = 136


@dataclass(frozen=True, slots=True)
class CoreSegment:
    """One PT_LOAD segment of a core: a mapping of the dumped process.

    Returned in ``CoreFile.segments``. ``filesz`` bytes are stored at
    ``offset`` in the core; ``memsz - filesz`` more read as zeros (gdb and the
    kernel store 0 bytes for mappings they could not or chose not to read).
    ``path`` comes from the kernel's NT_FILE note when there is one.
    """

    start: int
    memsz: int
    offset: int
    filesz: int
    flags: int
    path: str = ""

    @property
    def end(self) -> int:
        return self.start + self.memsz

    @property
    def size(self) -> int:
        return self.memsz

    @property
    def perms(self) -> str:
        # Cores do not say private or shared; "p" is what almost every mapping is.
        return ("r" if self.flags & PF_R else "-") + ("w" if self.flags & PF_W else "-") + \
               ("x" if self.flags & PF_X else "-") + "p"


class CoreFile:
    """An ELF64 core file, memory-mapped read-only. Use as a context manager or call ``close()``."""

    def __init__(self, path: Union[str, os.PathLike[str]]):
        self.path = Path(path)
        try:
            self._file = open(self.path, "rb")
        except IsADirectoryError:
            raise InputError(f"{self.path}: is a directory, not a core file") from None
        except FileNotFoundError:
            raise InputError(f"{self.path}: no such file") from None
        try:
            self.size = os.fstat(self._file.fileno()).st_size
            if self.size < 64:
                raise ParseError("too short for an ELF header", source=str(self.path))
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self._parse()
        except BaseException:
            self.close()
            raise

    # -- parsing

    def _fail(self, message: str) -> ParseError:
        return ParseError(message, source=str(self.path))

    def _parse(self) -> None:
        m = self._map
        if m[:4] != ELF_MAGIC:
            raise InputError(f"{self.path}: not an ELF file")
        if m[4] != ELFCLASS64:
            raise InputError(f"{self.path}: a 32-bit ELF file; only 64-bit cores are supported")
        if m[5] not in (1, 2):
            raise self._fail(f"bad ELF data encoding {m[5]}")
        self.endian = "<" if m[5] == 1 else ">"
        (e_type, self.machine, _version, _entry, phoff, shoff, _flags, _ehsize, phentsize, phnum,
         shentsize, _shnum, _shstrndx) = struct.unpack_from(self.endian + "HHIQQQIHHHHHH", m, 16)
        if e_type != ET_CORE:
            raise InputError(f"{self.path}: an ELF file but not a core (e_type {e_type})")
        if phnum == PN_XNUM:
            # More than 65534 segments: the real count is in section header 0's sh_info.
            if shoff == 0 or shoff + 64 > self.size:
                raise self._fail("e_phnum is PN_XNUM but there is no section header 0")
            (phnum,) = struct.unpack_from(self.endian + "I", m, shoff + 44)
        if phentsize != 56:
            raise self._fail(f"unexpected program header size {phentsize}")
        if phoff + phnum * phentsize > self.size:
            raise self._fail("program headers run past the end of the file (truncated core?)")
        segments = []
        notes: list[tuple[int, int]] = []
        for i in range(phnum):
            p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align = struct.unpack_from(
                self.endian + "IIQQQQQQ", m, phoff + i * phentsize)
            if p_type == PT_LOAD:
                if p_filesz > p_memsz:
                    raise self._fail(f"segment {i} at {p_vaddr:#x} stores more than its size")
                if p_offset + p_filesz > self.size:
                    raise self._fail(f"segment {i} at {p_vaddr:#x} runs past the end of the file "
                                     "(truncated core?)")
                segments.append(CoreSegment(p_vaddr, p_memsz, p_offset, p_filesz, p_flags))
            elif p_type == PT_NOTE:
                if p_offset + p_filesz > self.size:
                    raise self._fail("note segment runs past the end of the file (truncated core?)")
                notes.append((p_offset, p_filesz))
        self.pid: Optional[int] = None
        self.command = ""
        self.psargs = ""
        files: dict[int, str] = {}
        for off, size in notes:
            for ntype, desc in self._notes(off, size):
                if ntype == NT_PRPSINFO and len(desc) >= _PRPSINFO_SIZE:
                    (self.pid,) = struct.unpack_from(self.endian + "i", desc, 24)
                    self.command = _cstr(desc[40:56])
                    self.psargs = _cstr(desc[56:136])
                elif ntype == NT_FILE:
                    files.update(self._nt_file(desc))
        segments.sort(key=lambda s: s.start)
        self.segments: tuple[CoreSegment, ...] = tuple(
            CoreSegment(s.start, s.memsz, s.offset, s.filesz, s.flags, files.get(s.start, ""))
            for s in segments)

    def _notes(self, off: int, size: int):
        m, end, e = self._map, off + size, self.endian
        while off + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from(e + "III", m, off)
            name_at = off + 12
            desc_at = name_at + _align4(namesz)
            nxt = desc_at + _align4(descsz)
            if nxt > end:
                raise self._fail(f"note at file offset {off:#x} runs past its segment")
            yield ntype, bytes(m[desc_at:desc_at + descsz])
            off = nxt

    def _nt_file(self, desc: bytes) -> dict[int, str]:
        e = self.endian
        if len(desc) < 16:
            raise self._fail("NT_FILE note too short")
        count, _page = struct.unpack_from(e + "QQ", desc, 0)
        table_end = 16 + count * 24
        if table_end > len(desc):
            raise self._fail("NT_FILE note table runs past the note")
        names = desc[table_end:].split(b"\0")
        out = {}
        for i in range(count):
            start, _end, _pgoff = struct.unpack_from(e + "QQQ", desc, 16 + i * 24)
            if i < len(names):
                out[start] = names[i].decode(errors="surrogateescape")
        return out

    # -- reading

    def segment_at(self, addr: int) -> CoreSegment:
        """The segment holding virtual address ``addr``."""
        for s in self.segments:
            if s.start <= addr < s.end:
                return s
        raise InputError(f"{self.path}: address {addr:#x} is in no segment of the core")

    def view(self, seg: CoreSegment) -> memoryview:
        """The stored bytes of ``seg`` (``filesz`` of them), without copying."""
        return memoryview(self._map)[seg.offset:seg.offset + seg.filesz]

    def read(self, seg: CoreSegment, offset: int = 0, size: Optional[int] = None) -> bytes:
        """``size`` bytes of ``seg`` from ``offset`` (default: to its end); unstored bytes are zeros."""
        if size is None:
            size = seg.memsz - offset
        if offset < 0 or size < 0 or offset + size > seg.memsz:
            raise InputError(f"read of {size} bytes at +{offset:#x} is outside segment "
                             f"{seg.start:#x}-{seg.end:#x}")
        stored_end = min(offset + size, seg.filesz)
        data = bytes(self._map[seg.offset + offset:seg.offset + stored_end]) if offset < seg.filesz else b""
        return data + bytes(size - len(data))

    def read_at(self, addr: int, size: int) -> bytes:
        """``size`` bytes at virtual address ``addr`` (within one segment)."""
        seg = self.segment_at(addr)
        return self.read(seg, addr - seg.start, size)

    def as_manifest(self) -> Manifest:
        """The core described as a dump manifest: one region per segment, all in this one file."""
        regions = []
        for s in self.segments:
            if s.filesz == 0:
                regions.append(RegionEntry(
                    start=s.start, end=s.end, perms=s.perms, path=s.path, status=SKIPPED,
                    skipped=(SkippedRange(s.start, s.end, "not-in-core"),)))
                continue
            regions.append(RegionEntry(
                start=s.start, end=s.end, perms=s.perms, path=s.path, present=s.filesz,
                file=self.path.name, file_offset=s.offset, file_size=s.filesz, status=COMPLETE,
                skipped=(SkippedRange(s.start + s.filesz, s.end, "not-in-core"),)
                if s.filesz < s.memsz else ()))
        mtime = datetime.fromtimestamp(self.path.stat().st_mtime, timezone.utc)
        return Manifest(
            pid=self.pid, cmdline=tuple(self.psargs.split()) if self.psargs else (),
            created=mtime.isoformat(timespec="seconds"), method="core", regions=tuple(regions),
            source="core", selection=f"core {self.path.name}", directory=str(self.path.parent.resolve()))

    def close(self) -> None:
        m = getattr(self, "_map", None)
        if m is not None:
            m.close()
            self._map = None
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()
            self._file = None

    def __enter__(self) -> "CoreFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _cstr(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode(errors="surrogateescape")
