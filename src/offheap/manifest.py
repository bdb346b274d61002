"""The manifest of a dump directory: which virtual addresses each dump file holds.

``offheap dump`` writes one ``manifest.json`` beside the region files; every
later step (scan, attribute, diff) reads it, so a dump copied off a production
box can be analysed anywhere and still report virtual addresses.

Example::

    >>> m = load_manifest("/tmp/dump-4242")                 # doctest: +SKIP
    >>> for r in m.dumped():                                # doctest: +SKIP
    ...     data = read_region(m, r)                        # bytes of r.start..r.end
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from .errors import InputError, ParseError

SCHEMA = "offheap-dump/1"
MANIFEST_NAME = "manifest.json"

# Region statuses.
COMPLETE = "complete"     # every present page of start..end is in the file
PARTIAL = "partial"       # the file stops or has gaps we could not fill (see ``skipped``)
SKIPPED = "skipped"       # nothing was dumped (no read permission, unreadable, budget spent)


@dataclass(frozen=True, slots=True)
class SkippedRange:
    """A part of a region that is not in the dump file, and why.

    ``reason``: "no-read-permission", "unreadable" (EIO/EFAULT), "swapped"
    (kept out so the dump does not swap it back in), "max-bytes",
    "process-exited", "address-too-high" (>= 2**63, vsyscall).
    Pages never touched are not listed: they are holes by design.
    """

    start: int
    end: int
    reason: str

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class RegionEntry:
    """One dumped (or skipped) address range, as listed in ``manifest.json``.

    ``file`` is relative to the manifest's directory (None when nothing was
    written); byte ``i`` of ``file`` at ``file_offset + i`` holds virtual address
    ``start + i``. ``present`` counts the bytes actually read (resident pages);
    the rest of the file is holes (sparse) or zeros. ``rss`` is the smaps
    figure for the mapping when it was known. ``sha256`` is of the whole
    ``end - start`` bytes as stored (holes read as zeros). For a core file
    ``file`` is the core and ``file_offset``/``file_size`` locate the segment.
    """

    start: int
    end: int
    perms: str
    path: str = ""
    cls: Optional[str] = None
    rss: Optional[int] = None
    present: int = 0
    swapped: int = 0
    file: Optional[str] = None
    file_offset: int = 0
    file_size: Optional[int] = None
    sha256: Optional[str] = None
    status: str = COMPLETE
    skipped: tuple[SkippedRange, ...] = ()

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def stored_size(self) -> int:
        """Bytes of the file that belong to this region (zeros follow up to ``size``)."""
        return self.size if self.file_size is None else self.file_size

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["class"] = d.pop("cls")
        # Hex addresses read better and survive JSON readers that use doubles.
        d["start"] = f"{self.start:#x}"
        d["end"] = f"{self.end:#x}"
        d["skipped"] = [{"start": f"{s.start:#x}", "end": f"{s.end:#x}", "reason": s.reason}
                        for s in self.skipped]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "RegionEntry":
        return cls(
            start=_addr(d["start"]), end=_addr(d["end"]), perms=str(d["perms"]),
            path=str(d.get("path", "")), cls=d.get("class"), rss=d.get("rss"),
            present=int(d.get("present", 0)), swapped=int(d.get("swapped", 0)),
            file=d.get("file"), file_offset=int(d.get("file_offset", 0)),
            file_size=d.get("file_size"), sha256=d.get("sha256"),
            status=str(d.get("status", COMPLETE)),
            skipped=tuple(SkippedRange(_addr(s["start"]), _addr(s["end"]), str(s["reason"]))
                          for s in d.get("skipped", ())),
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    """What one dump directory holds. Returned by ``dump.dump_process`` and ``load_manifest``.

    ``complete`` is False when the process exited mid-dump or a region is
    partial. ``stopped_seconds`` is how long the target was kept stopped by us
    (0 for ``mem``/``vm``, gdb's attach time for ``gdb``). ``source`` is
    "live" for a dump of a running process, "core" for a core file.
    """

    pid: Optional[int]
    cmdline: tuple[str, ...]
    created: str                       # ISO 8601, UTC
    method: str                        # "mem" | "vm" | "gdb" | "core"
    regions: tuple[RegionEntry, ...]
    complete: bool = True
    stopped_seconds: float = 0.0
    elapsed_seconds: float = 0.0
    page_size: int = 4096
    start_time_ticks: Optional[int] = None   # /proc/PID/stat field 22: tells PID reuse apart
    source: str = "live"
    selection: str = ""
    note: str = ""
    schema: str = SCHEMA
    directory: Optional[str] = field(default=None, compare=False)

    def dumped(self) -> Iterator[RegionEntry]:
        """Regions with a file to read."""
        return (r for r in self.regions if r.file is not None)

    @property
    def present(self) -> int:
        return sum(r.present for r in self.regions)

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in (
            "schema", "pid", "cmdline", "created", "method", "source", "selection", "complete",
            "stopped_seconds", "elapsed_seconds", "page_size", "start_time_ticks", "note")}
        d["cmdline"] = list(self.cmdline)
        d["regions"] = [r.to_json() for r in self.regions]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], directory: Optional[str] = None) -> "Manifest":
        schema = d.get("schema")
        if not isinstance(schema, str) or not schema.startswith("offheap-dump/"):
            raise InputError(f"not an offheap dump manifest (schema {schema!r})")
        if schema != SCHEMA:
            raise InputError(f"manifest schema {schema} is not supported (this offheap reads {SCHEMA})")
        return cls(
            pid=d.get("pid"), cmdline=tuple(d.get("cmdline", ())), created=str(d.get("created", "")),
            method=str(d.get("method", "")), source=str(d.get("source", "live")),
            selection=str(d.get("selection", "")), complete=bool(d.get("complete", True)),
            stopped_seconds=float(d.get("stopped_seconds", 0.0)),
            elapsed_seconds=float(d.get("elapsed_seconds", 0.0)),
            page_size=int(d.get("page_size", 4096)), start_time_ticks=d.get("start_time_ticks"),
            note=str(d.get("note", "")),
            regions=tuple(RegionEntry.from_json(r) for r in d.get("regions", ())),
            directory=directory,
        )


def _addr(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(str(value), 0)


def save_manifest(manifest: Manifest, directory: str | os.PathLike[str]) -> Path:
    """Write ``manifest.json`` into ``directory`` (mode 0600), atomically by rename."""
    path = Path(directory) / MANIFEST_NAME
    tmp = path.with_name(MANIFEST_NAME + ".tmp")
    data = json.dumps(manifest.to_json(), indent=1).encode() + b"\n"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)          # O_CREAT's mode is filtered by umask; this is not
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def load_manifest(directory: str | os.PathLike[str]) -> Manifest:
    """Read ``DIR/manifest.json`` (or a manifest file path given directly)."""
    p = Path(directory)
    path = p if p.is_file() else p / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no dump manifest here") from None
    try:
        d = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"not valid JSON: {exc}", source=str(path)) from None
    if not isinstance(d, dict):
        raise ParseError("manifest is not a JSON object", source=str(path))
    try:
        return Manifest.from_json(d, directory=str(path.parent))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, InputError):
            # name the file: "not an offheap dump manifest" alone does not say which
            raise ParseError(str(exc), source=str(path)) from None
        raise ParseError(f"malformed manifest: {exc!r}", source=str(path)) from None


def region_file(manifest: Manifest, entry: RegionEntry) -> Path:
    """The absolute path of ``entry``'s file."""
    if entry.file is None:
        raise InputError(f"region {entry.start:#x}-{entry.end:#x} was not dumped ({entry.status})")
    base = Path(manifest.directory or ".")
    return base / entry.file


def read_region(manifest: Manifest, entry: RegionEntry) -> bytes:
    """All ``entry.size`` bytes of a region (holes and the unstored tail read as zeros)."""
    with open(region_file(manifest, entry), "rb") as f:
        f.seek(entry.file_offset)
        data = f.read(entry.stored_size)
    if len(data) < entry.size:
        data += bytes(entry.size - len(data))
    return data
