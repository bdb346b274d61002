"""Read a process's /proc files, live or from saved copies, into typed records.

Everything is read and parsed as **bytes** and decoded only at the edge
(paths with ``os.fsdecode``, so odd bytes survive as surrogates), the way
``psutil/_pslinux.py`` does. Sizes come back in bytes.

>>> maps = read_smaps(os.getpid())            # doctest: +SKIP
>>> sum(m.rss for m in maps if m.path == "[heap]")  # doctest: +SKIP

Live errors map to ``NoSuchProcess`` / ``ZombieProcess`` / ``AccessDenied``;
malformed text raises ``ParseError`` naming the source and the 1-based line.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, TypeVar, Union

from .errors import AccessDenied, InputError, KernelThread, NoSuchProcess, ParseError, ZombieProcess
from .records import KIB, MallocSettings, Mapping, ProcessStatus, SmapsRollup

__all__ = [
    "parse_maps", "parse_smaps", "parse_smaps_rollup", "parse_status", "parse_cmdline",
    "parse_environ", "malloc_settings",
    "read_maps", "read_smaps", "read_smaps_rollup", "read_status", "read_cmdline", "read_environ",
    "read_proc_file", "ProcessSnapshot", "load_snapshot", "MemReader",
]

PROC = "/proc"

# "start-end perms offset dev inode   path": the path is padded with spaces and
# may itself contain spaces or end in " (deleted)", so take the rest verbatim.
_HEADER = re.compile(
    rb"^([0-9a-f]+)-([0-9a-f]+) ([-r][-w][-xX][-psS]) ([0-9a-f]+) "
    rb"([0-9a-f]+:[0-9a-f]+) (\d+)(?: +(.*))?$"
)
# "Rss:   123 kB", "THPeligible:    0", "ProtectionKey:  0"
_FIELD = re.compile(rb"^([A-Za-z_][A-Za-z0-9_]*):\s+(-?\d+)(?: (kB))?\s*$")

Source = Union[bytes, str]


def _lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _header(line: bytes, source: str, lineno: int) -> Mapping:
    m = _HEADER.match(line)
    if m is None:
        raise ParseError(f"not a maps line: {line[:80]!r}", source, lineno)
    start, end = int(m.group(1), 16), int(m.group(2), 16)
    if end < start:
        raise ParseError(f"mapping ends before it starts: {line[:80]!r}", source, lineno)
    path = m.group(7) or b""
    return Mapping(
        start=start, end=end, perms=m.group(3).decode("ascii"), offset=int(m.group(4), 16),
        dev=m.group(5).decode("ascii"), inode=int(m.group(6)), path=os.fsdecode(path),
    )


def parse_maps(data: bytes, source: str = "maps") -> list[Mapping]:
    """Parse /proc/PID/maps text (bytes) into ``Mapping`` records (no smaps fields).

    >>> parse_maps(b"00400000-00401000 r-xp 00000000 fe:00 12 /bin/true\\n")[0].path
    '/bin/true'
    """
    out = []
    for lineno, line in enumerate(_lines(data), 1):
        if not line.strip():
            continue
        out.append(_header(line, source, lineno))
    return out


def _with_smaps(base: Mapping, fields: dict[str, int], counters: dict[str, int],
                vmflags: frozenset[str]) -> Mapping:
    return Mapping(base.start, base.end, base.perms, base.offset, base.dev, base.inode, base.path,
                   fields, counters, vmflags, True)


def _field_line(line: bytes, fields: dict[str, int], counters: dict[str, int],
                source: str, lineno: int) -> None:
    m = _FIELD.match(line)
    if m is None:
        raise ParseError(f"unexpected smaps line: {line[:80]!r}", source, lineno)
    # Field *names* are not checked against a list: kernels add fields (Pss_Dirty in 6.0,
    # KSM in 6.4, ...) and a parser that rejects them breaks on every upgrade. The line
    # *shape* is checked instead, so garbage still fails loudly.
    name = m.group(1).decode("ascii")
    value = int(m.group(2))
    if m.group(3):
        fields[name] = value * KIB
    else:
        counters[name] = value


def parse_smaps(data: bytes, source: str = "smaps") -> list[Mapping]:
    """Parse /proc/PID/smaps text (bytes): one ``Mapping`` per block, every field kept.

    kB fields go to ``Mapping.fields`` in bytes, unit-less ones (THPeligible,
    ProtectionKey) to ``counters``, ``VmFlags`` to ``vmflags``. A line that is
    neither a mapping header, a ``Name: N [kB]`` field nor VmFlags is a
    ``ParseError``; so is a field before the first header.
    """
    out: list[Mapping] = []
    cur: Optional[Mapping] = None
    fields: dict[str, int] = {}
    counters: dict[str, int] = {}
    vmflags: frozenset[str] = frozenset()
    for lineno, line in enumerate(_lines(data), 1):
        if not line.strip():
            continue
        if line[:1] in b"0123456789abcdef" and _HEADER.match(line):
            if cur is not None:
                out.append(_with_smaps(cur, fields, counters, vmflags))
            cur = _header(line, source, lineno)
            fields, counters, vmflags = {}, {}, frozenset()
            continue
        if cur is None:
            raise ParseError(f"smaps field before any mapping header: {line[:80]!r}", source, lineno)
        if line.startswith(b"VmFlags:"):
            # VmFlags is the one field that is not a number: two-letter flags (since 3.8).
            vmflags = frozenset(f.decode("ascii", "replace") for f in line[8:].split())
            continue
        _field_line(line, fields, counters, source, lineno)
    if cur is not None:
        out.append(_with_smaps(cur, fields, counters, vmflags))
    return out


def parse_smaps_rollup(data: bytes, source: str = "smaps_rollup") -> SmapsRollup:
    """Parse /proc/PID/smaps_rollup (Linux 4.14+): one header and summed kB fields."""
    lines = [(i, ln) for i, ln in enumerate(_lines(data), 1) if ln.strip()]
    if not lines:
        raise ParseError("empty smaps_rollup", source)
    lineno, first = lines[0]
    head = _header(first, source, lineno)
    fields: dict[str, int] = {}
    counters: dict[str, int] = {}
    for lineno, line in lines[1:]:
        _field_line(line, fields, counters, source, lineno)
    return SmapsRollup(head.start, head.end, fields)


_STATUS_SIZES = {
    "VmPeak": "vm_peak", "VmSize": "vm_size", "VmHWM": "vm_hwm", "VmRSS": "vm_rss",
    "RssAnon": "rss_anon", "RssFile": "rss_file", "RssShmem": "rss_shmem",
    "VmData": "vm_data", "VmStk": "vm_stk", "VmSwap": "vm_swap",
}


def parse_status(data: bytes, source: str = "status") -> ProcessStatus:
    """Parse /proc/PID/status into ``ProcessStatus`` (sizes in bytes; all fields in ``raw``)."""
    raw: dict[str, str] = {}
    sizes: dict[str, Optional[int]] = {}
    for lineno, line in enumerate(_lines(data), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition(b":")
        if not sep or not key or b" " in key.strip():
            raise ParseError(f"not a 'Key:\\tvalue' status line: {line[:80]!r}", source, lineno)
        k = key.decode("ascii", "replace")
        # Name is the comm, which the process may set to anything: decode leniently.
        v = value.strip().decode("utf-8", "surrogateescape")
        raw[k] = v
        if k in _STATUS_SIZES:
            num, _, unit = v.partition(" ")
            if not num.isdigit() or unit.strip() != "kB":
                raise ParseError(f"{k} is not 'N kB': {v!r}", source, lineno)
            sizes[_STATUS_SIZES[k]] = int(num) * KIB
    for need in ("Name", "State", "Pid"):
        if need not in raw:
            raise ParseError(f"status has no {need}: line", source)
    state = raw["State"]
    letter, _, text = state.partition(" ")

    def num(key: str) -> int:
        try:
            return int(raw.get(key, "0"))
        except ValueError:
            raise ParseError(f"{key} is not a number: {raw.get(key)!r}", source) from None

    return ProcessStatus(
        name=raw["Name"], pid=num("Pid"), ppid=num("PPid"), state=letter,
        state_text=text.strip("()"), threads=num("Threads"), tracer_pid=num("TracerPid"),
        raw=raw, **sizes,
    )


def parse_cmdline(data: bytes) -> tuple[str, ...]:
    """/proc/PID/cmdline: NUL-separated argv (a process may rewrite it; keep what is there)."""
    if not data:
        return ()
    parts = data.split(b"\0")
    if parts[-1] == b"":
        parts.pop()
    # Some programs overwrite argv[0] with spaces as separators and no NULs (setproctitle).
    return tuple(os.fsdecode(p) for p in parts)


def parse_environ(data: bytes) -> dict[str, str]:
    """/proc/PID/environ: the environment the process was *started* with (NUL-separated)."""
    env: dict[str, str] = {}
    last = b""
    for item in data.split(b"\0"):
        if not item:
            continue
        if last == b"GLIBC_TUNABLES" and item.startswith(b"glibc."):
            # glibc (2.36 here) parses GLIBC_TUNABLES in place and writes NUL over each
            # ':' separator, so /proc/PID/environ shows "GLIBC_TUNABLES=a=1\0glibc.b=2".
            env["GLIBC_TUNABLES"] += ":" + os.fsdecode(item)
            continue
        key, sep, value = item.partition(b"=")
        last = key
        if not sep:
            continue            # a stray word (the process edited its env block): not a variable
        env[os.fsdecode(key)] = os.fsdecode(value)
    return env


def malloc_settings(env: dict[str, str]) -> MallocSettings:
    """glibc malloc knobs from an environment: MALLOC_ARENA_MAX and GLIBC_TUNABLES.

    ``GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=…``.
    When both set the arena cap, the tunable is reported as effective: glibc
    2.26+ maps MALLOC_ARENA_MAX onto the same tunable, and which of the two a
    given glibc applies last has varied; the raw values are kept for the user.
    """
    tunables: dict[str, str] = {}
    raw_t = env.get("GLIBC_TUNABLES")
    if raw_t:
        for item in raw_t.split(":"):
            name, sep, value = item.partition("=")
            if sep and name:
                tunables[name.strip()] = value.strip()
    raw_m = env.get("MALLOC_ARENA_MAX")

    def as_int(v: Optional[str]) -> Optional[int]:
        if v is None:
            return None
        try:
            n = int(v, 0)
        except ValueError:
            return None         # glibc ignores a malformed value too
        return n if n > 0 else None

    arena_max = as_int(tunables.get("glibc.malloc.arena_max"))
    if arena_max is None:
        arena_max = as_int(raw_m)
    other = {k: v for k, v in env.items() if k.startswith("MALLOC_") and k != "MALLOC_ARENA_MAX"}
    return MallocSettings(raw_m, raw_t, tunables, arena_max, other)


# --------------------------------------------------------------------------- live reading

def _proc_path(pid: int, name: str) -> str:
    return f"{PROC}/{pid}/{name}"


def _stat_fields(pid: int) -> list[bytes]:
    """/proc/PID/stat after the comm field (state, ppid, …, flags at [6]); [] if gone."""
    try:
        with open(_proc_path(pid, "stat"), "rb") as f:
            data = f.read()
    except OSError:
        return []
    # "pid (comm) S ...": comm may hold spaces and parens, so split at the last ')'.
    return data.rpartition(b")")[2].split()


def _is_zombie(pid: int) -> bool:
    rest = _stat_fields(pid)
    return bool(rest) and rest[0] in (b"Z", b"X")


_PF_KTHREAD = 0x00200000   # include/linux/sched.h: the task is a kernel thread (no mm)


def _is_kernel_thread(pid: int) -> bool:
    rest = _stat_fields(pid)
    return len(rest) > 6 and rest[6].isdigit() and bool(int(rest[6]) & _PF_KTHREAD)


def missing_memory_error(pid: int) -> NoSuchProcess | KernelThread:
    """Why process ``pid`` has no memory to read: a zombie, a kernel thread, or gone.

    Kernel threads and zombies have no mm: their maps/smaps read empty and their
    mem/smaps_rollup fail with ESRCH although /proc/PID exists.
    """
    if _is_zombie(pid):
        return ZombieProcess(pid)
    if _is_kernel_thread(pid):
        return KernelThread(pid)
    return NoSuchProcess(pid)


def read_proc_file(pid: int, name: str) -> bytes:
    """Read /proc/PID/NAME as bytes, turning OS errors into offheap's process errors."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise InputError(f"not a PID: {pid!r}")
    path = _proc_path(pid, name)
    try:
        # Unbuffered whole read: /proc files are generated on read(), sizes in stat are 0.
        with open(path, "rb", buffering=0) as f:
            chunks = []
            while True:
                chunk = f.read(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
    except (FileNotFoundError, ProcessLookupError):
        raise missing_memory_error(pid) from None
    except PermissionError:
        raise AccessDenied(pid, f"cannot read {path}") from None
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            raise missing_memory_error(pid) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise AccessDenied(pid, f"cannot read {path}") from None
        raise


def _read_mm_file(pid: int, name: str) -> bytes:
    data = read_proc_file(pid, name)
    # A zombie (and a kernel thread) has no mm: the file reads empty. Say which.
    if not data.strip():
        exc = missing_memory_error(pid)
        if type(exc) is not NoSuchProcess:
            raise exc
    return data


def read_maps(pid: int) -> list[Mapping]:
    """Mappings of a live process from /proc/PID/maps."""
    return parse_maps(_read_mm_file(pid, "maps"), _proc_path(pid, "maps"))


def read_smaps(pid: int) -> list[Mapping]:
    """Mappings of a live process with every smaps field (/proc/PID/smaps)."""
    return parse_smaps(_read_mm_file(pid, "smaps"), _proc_path(pid, "smaps"))


def read_smaps_rollup(pid: int) -> SmapsRollup:
    return parse_smaps_rollup(_read_mm_file(pid, "smaps_rollup"), _proc_path(pid, "smaps_rollup"))


def read_status(pid: int) -> ProcessStatus:
    return parse_status(read_proc_file(pid, "status"), _proc_path(pid, "status"))


def read_cmdline(pid: int) -> tuple[str, ...]:
    return parse_cmdline(read_proc_file(pid, "cmdline"))


def read_environ(pid: int) -> dict[str, str]:
    return parse_environ(read_proc_file(pid, "environ"))


# --------------------------------------------------------------------------- snapshots

_KINDS = ("smaps", "maps", "smaps_rollup", "status", "cmdline", "environ")

T = TypeVar("T")


@dataclass
class ProcessSnapshot:
    """What offheap knows of one process, from a live PID or a directory of captures.

    Returned by ``load_snapshot``. ``mappings`` come from smaps when present
    (else maps, with no sizes beyond the address range). Missing optional
    files leave ``None`` and their reason in ``missing``.

    >>> snap = load_snapshot(os.getpid())          # doctest: +SKIP
    >>> snap = load_snapshot("captures/jvm_deflater600.smaps")  # doctest: +SKIP
    """

    source: str
    pid: Optional[int]
    mappings: list[Mapping]
    has_smaps: bool
    rollup: Optional[SmapsRollup] = None
    status: Optional[ProcessStatus] = None
    cmdline: Optional[tuple[str, ...]] = None
    environ: Optional[dict[str, str]] = None
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def malloc(self) -> Optional[MallocSettings]:
        return None if self.environ is None else malloc_settings(self.environ)

    @property
    def rss(self) -> int:
        """Resident bytes: rollup, else status VmRSS, else the sum over smaps."""
        if self.rollup is not None:
            return self.rollup.rss
        if self.status is not None and self.status.vm_rss is not None:
            return self.status.vm_rss
        return sum(m.rss for m in self.mappings)


def _optional(snapshot_missing: dict[str, str], kind: str, fn: Callable[[], T]) -> Optional[T]:
    try:
        return fn()
    except (AccessDenied, FileNotFoundError) as exc:
        snapshot_missing[kind] = str(exc)
        return None


def _snapshot_pid(pid: int) -> ProcessSnapshot:
    missing: dict[str, str] = {}
    status = read_status(pid)           # first: NoSuchProcess here is the clearest error
    if status.is_zombie:
        raise ZombieProcess(pid)
    # smaps needs PTRACE_MODE_READ, as maps does: AccessDenied here has no fallback.
    mappings = read_smaps(pid)
    return ProcessSnapshot(
        source=f"{PROC}/{pid}", pid=pid, mappings=mappings, has_smaps=True,
        rollup=_optional(missing, "smaps_rollup", lambda: read_smaps_rollup(pid)),
        status=status,
        cmdline=_optional(missing, "cmdline", lambda: read_cmdline(pid)),
        environ=_optional(missing, "environ", lambda: read_environ(pid)),
        missing=missing,
    )


def _capture_files(target: Path) -> dict[str, Path]:
    """Map kind -> file for a directory (``maps``, ``smaps`` ...) or one ``X.smaps`` file.

    Fixture naming ``X.smaps``, ``X.smaps_rollup``, ``X.status`` … is accepted:
    given one such file, its siblings with the same stem are used.
    """
    files: dict[str, Path] = {}
    if target.is_dir():
        for kind in _KINDS:
            p = target / kind
            if p.is_file():
                files[kind] = p
        if not files:
            stems = {p.name.rsplit(".", 1)[0] for p in target.iterdir()
                     if p.is_file() and p.name.rsplit(".", 1)[-1] in _KINDS}
            if len(stems) == 1:
                return _capture_files(target / f"{stems.pop()}.smaps")
            if len(stems) > 1:
                raise InputError(f"{target}: captures of several processes ({', '.join(sorted(stems))}); "
                                 "name one file")
    elif target.is_file():
        stem, dot, ext = target.name.rpartition(".")
        if dot and ext in _KINDS:
            for kind in _KINDS:
                p = target.with_name(f"{stem}.{kind}")
                if p.is_file():
                    files[kind] = p
        else:
            # A bare file: decide by content (smaps blocks have field lines).
            files["smaps" if _looks_like_smaps(target) else "maps"] = target
    else:
        raise InputError(f"{target}: no such file or directory")
    return files


def _looks_like_smaps(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096)
    lines = head.split(b"\n")
    return len(lines) > 1 and bool(_FIELD.match(lines[1]) or lines[1].startswith(b"VmFlags:"))


def _snapshot_files(target: Path) -> ProcessSnapshot:
    files = _capture_files(target)
    if "smaps" not in files and "maps" not in files:
        raise InputError(f"{target}: no maps or smaps capture found")
    data = {kind: p.read_bytes() for kind, p in files.items()}
    src = {kind: str(p) for kind, p in files.items()}
    kind = "smaps" if "smaps" in data else "maps"
    if not data[kind].strip():
        # Every process maps something: an empty capture is a failed copy, not a process.
        raise ParseError("empty capture: no mappings", src[kind])
    if "smaps" in data:
        mappings, has_smaps = parse_smaps(data["smaps"], src["smaps"]), True
    else:
        mappings, has_smaps = parse_maps(data["maps"], src["maps"]), False
    status = parse_status(data["status"], src["status"]) if "status" in data else None
    missing = {k: "not captured" for k in _KINDS if k not in files}
    return ProcessSnapshot(
        source=str(target), pid=status.pid if status else None, mappings=mappings,
        has_smaps=has_smaps,
        rollup=parse_smaps_rollup(data["smaps_rollup"], src["smaps_rollup"])
        if "smaps_rollup" in data else None,
        status=status,
        cmdline=parse_cmdline(data["cmdline"]) if "cmdline" in data else None,
        environ=parse_environ(data["environ"]) if "environ" in data else None,
        missing=missing,
    )


def parse_target(target: Union[int, str, os.PathLike]) -> Union[int, Path]:
    """A CLI target: an all-digit string is a PID (unless such a file exists), else a path."""
    if isinstance(target, int):
        return target
    text = os.fspath(target)
    if isinstance(text, str) and text.isdigit() and not os.path.exists(text):
        return int(text)
    return Path(text)


def load_snapshot(target: Union[int, str, os.PathLike]) -> ProcessSnapshot:
    """Load a process's /proc view from a PID, a capture directory or one capture file."""
    t = parse_target(target)
    if isinstance(t, int):
        return _snapshot_pid(t)
    return _snapshot_files(t)


class MemReader:
    """``reader(addr, n) -> bytes | None`` over /proc/PID/mem, read-only, by ``os.pread``.

    Called as a function it serves small probes such as heap_info headers
    (``regions.classify``), returning None where the kernel refuses
    (EIO on unmapped addresses); addresses ≥ 2**63 (vsyscall) overflow pread's
    offset and are skipped. ``readinto`` serves ``dump.py``'s large reads. Opening
    raises AccessDenied / NoSuchProcess.
    """

    def __init__(self, pid: int):
        self.pid = pid
        path = _proc_path(pid, "mem")
        try:
            self._fd: Optional[int] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, ProcessLookupError):
            raise missing_memory_error(pid) from None
        except PermissionError:
            raise AccessDenied(pid, f"cannot open {path}") from None

    def __call__(self, addr: int, n: int) -> Optional[bytes]:
        if self._fd is None or addr < 0 or addr + n > (1 << 63) - 1:
            return None
        try:
            data = os.pread(self._fd, n, addr)
        except OSError:
            return None
        return data if len(data) == n else None

    def readinto(self, addr: int, buf: memoryview) -> int:
        """Read into ``buf`` (for dumping large ranges); returns the bytes read. Raises
        OSError: EIO means the address cannot be read."""
        if self._fd is None:
            raise ValueError("MemReader is closed")
        return os.preadv(self._fd, [buf], addr)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "MemReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
