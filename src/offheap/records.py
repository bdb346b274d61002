"""Typed records shared by the process side, analysis and reporters.

Every record is a frozen dataclass; each names the API that returns it
(psutil's ``_ntuples.py`` shape). Sizes are always **bytes** (the kernel's and
NMT's ``kB``/``KB`` figures are multiplied out at parse time), addresses are
ints, and text is already decoded ``str``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Optional

KIB = 1024

# --------------------------------------------------------------------------- /proc


class _SmapsFields:
    """The smaps sizes offheap reads, in bytes, from ``self.fields`` (shared by a
    mapping's smaps block and smaps_rollup's sums)."""

    __slots__ = ()
    fields: dict[str, int]

    @property
    def rss(self) -> int:
        return self.fields.get("Rss", 0)

    @property
    def pss(self) -> int:
        return self.fields.get("Pss", 0)

    @property
    def private_dirty(self) -> int:
        return self.fields.get("Private_Dirty", 0)

    @property
    def dirty(self) -> int:
        """Private + shared dirty, what ``pmap -x`` calls Dirty."""
        return self.fields.get("Private_Dirty", 0) + self.fields.get("Shared_Dirty", 0)

    @property
    def swap(self) -> int:
        return self.fields.get("Swap", 0)

    @property
    def anonymous(self) -> int:
        """Bytes of anonymous pages (smaps ``Anonymous``)."""
        return self.fields.get("Anonymous", 0)


@dataclass(frozen=True, slots=True)
class Mapping(_SmapsFields):
    """One line of /proc/PID/maps, with its smaps block when there was one.

    Returned by ``proc.parse_maps``, ``proc.parse_smaps``, ``proc.read_maps``,
    ``proc.read_smaps`` (and ``ProcessSnapshot.mappings``).

    ``fields`` holds every ``Name: N kB`` line of the smaps block in bytes
    (``Rss``, ``Pss``, ``Size``, ``Private_Dirty``, ``Swap``,
    ``AnonHugePages``, ...). ``counters`` holds the unit-less ones
    (``THPeligible``, ``ProtectionKey``). Both are empty for a maps-only line.
    """

    start: int
    end: int
    perms: str                      # e.g. "rw-p"
    offset: int
    dev: str                        # "fe:00"
    inode: int
    path: str                       # "" for anonymous; "[heap]", "[stack]", "/usr/lib/..."
    fields: dict[str, int] = field(default_factory=dict, hash=False, compare=True)
    counters: dict[str, int] = field(default_factory=dict, hash=False, compare=True)
    vmflags: frozenset[str] = frozenset()
    has_smaps: bool = False

    # -- sizes (bytes)
    @property
    def size(self) -> int:
        """Virtual size, ``end - start`` (smaps ``Size`` says the same)."""
        return self.end - self.start

    def get(self, name: str, default: int = 0) -> int:
        """An smaps field in bytes, e.g. ``m.get("AnonHugePages")``."""
        return self.fields.get(name, default)

    # -- permissions
    @property
    def readable(self) -> bool:
        return self.perms[:1] == "r"

    @property
    def writable(self) -> bool:
        return self.perms[1:2] == "w"

    @property
    def executable(self) -> bool:
        return self.perms[2:3] == "x"

    @property
    def shared(self) -> bool:
        return self.perms[3:4] == "s"

    @property
    def private(self) -> bool:
        return self.perms[3:4] == "p"

    # -- kind
    @property
    def is_pseudo(self) -> bool:
        """``[heap]``, ``[stack]``, ``[vdso]``, ``[anon:name]`` ...: kernel-named, no file."""
        return self.path.startswith("[") and self.path.endswith("]")

    @property
    def is_file_backed(self) -> bool:
        # A real file always has an inode; kernel-named pseudo mappings ([vdso] ...) have 0.
        # Shared anonymous memory appears as "/dev/zero (deleted)" with an inode: counted here.
        return self.inode != 0 and not self.is_pseudo

    @property
    def is_anonymous(self) -> bool:
        """No backing file: ``""``, ``[heap]``, ``[stack]``, ``[anon:...]`` (not vdso/vvar/vsyscall)."""
        if self.is_file_backed:
            return False
        if not self.path:
            return True
        return self.path in ("[heap]", "[stack]") or self.path.startswith(("[anon:", "[stack:"))

    @property
    def is_special(self) -> bool:
        """Kernel pages that cannot be read through /proc/PID/mem: vdso, vvar, vsyscall."""
        return self.path in ("[vdso]", "[vvar]", "[vsyscall]", "[vectors]", "[sigpage]", "[uprobes]")

    def __repr__(self) -> str:  # short: these come by the hundred
        return (f"Mapping({self.start:#x}-{self.end:#x} {self.perms} {self.size // KIB}kB"
                f"{' rss=' + str(self.rss // KIB) + 'kB' if self.has_smaps else ''} {self.path!r})")


@dataclass(frozen=True, slots=True)
class SmapsRollup(_SmapsFields):
    """/proc/PID/smaps_rollup: the smaps fields summed over all mappings (bytes).

    Returned by ``proc.parse_smaps_rollup`` / ``proc.read_smaps_rollup``.
    """

    start: int
    end: int
    fields: dict[str, int] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    """/proc/PID/status, the fields offheap uses typed (sizes in bytes), all in ``raw``.

    Returned by ``proc.parse_status`` / ``proc.read_status``. The ``Vm*``/``Rss*``
    sizes are ``None`` for kernel threads and zombies, which have no mm.
    """

    name: str
    pid: int
    ppid: int
    state: str                      # one letter: R S D T t Z X I
    state_text: str                 # "sleeping"
    threads: int
    tracer_pid: int
    vm_peak: Optional[int] = None
    vm_size: Optional[int] = None
    vm_hwm: Optional[int] = None
    vm_rss: Optional[int] = None
    rss_anon: Optional[int] = None
    rss_file: Optional[int] = None
    rss_shmem: Optional[int] = None
    vm_data: Optional[int] = None
    vm_stk: Optional[int] = None
    vm_swap: Optional[int] = None
    raw: dict[str, str] = field(default_factory=dict, hash=False, repr=False)

    @property
    def is_zombie(self) -> bool:
        return self.state in ("Z", "X")

    @property
    def is_stopped(self) -> bool:
        return self.state in ("T", "t")


@dataclass(frozen=True, slots=True)
class MallocSettings:
    """glibc malloc settings found in a process environment.

    Returned by ``proc.malloc_settings`` (from ``environ``). ``arena_max`` is
    the effective cap when one is set, ``None`` means glibc's default
    (8 x CPUs on 64-bit).
    """

    malloc_arena_max: Optional[str] = None      # raw MALLOC_ARENA_MAX
    glibc_tunables: Optional[str] = None        # raw GLIBC_TUNABLES
    tunables: dict[str, str] = field(default_factory=dict, hash=False)
    arena_max: Optional[int] = None
    other: dict[str, str] = field(default_factory=dict, hash=False)  # other MALLOC_* variables


# --------------------------------------------------------------------------- NMT


@dataclass(frozen=True, slots=True)
class NmtCategory:
    """One ``-  Category (reserved=…, committed=…)`` block of a jcmd NMT report (bytes).

    Returned inside ``NmtReport.categories`` by ``nmt.parse_nmt``. Fields a JDK
    does not print stay 0 / ``None``. ``values`` keeps every other ``key=N``
    or ``key #N`` the block held (``classes``, ``thread``, ``stack_reserved``,
    ``tracking_overhead``, ``metadata_used`` ...), in bytes for sizes.
    ``deltas`` is filled from ``summary.diff`` (``+123KB``), keyed like the fields.
    """

    name: str
    reserved: int
    committed: int
    malloc: int = 0
    malloc_count: int = 0
    malloc_peak: Optional[int] = None           # None: not printed (JDK < 17)
    malloc_peak_count: Optional[int] = None
    malloc_at_peak: bool = False                # "(at peak)": current is the peak
    mmap_reserved: int = 0
    mmap_committed: int = 0
    mmap_peak: Optional[int] = None
    arena: int = 0
    arena_count: int = 0
    arena_peak: Optional[int] = None
    values: dict[str, int] = field(default_factory=dict, hash=False)
    deltas: dict[str, int] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class NmtVirtualRegion:
    """A reserved region of the NMT detail "Virtual memory map", with its committed parts.

    Returned inside ``NmtReport.virtual_regions`` by ``nmt.parse_nmt``.
    ``category`` is the ``for …`` text ("Java Heap", "Code", "Metaspace",
    "Thread Stack", ...); ``committed`` lists (start, end) ranges.
    """

    start: int
    end: int
    category: str
    reserved_committed: bool                    # "reserved and committed"
    committed: tuple[tuple[int, int], ...] = ()
    stack: tuple[str, ...] = ()                 # first frame lines of the reserving call site

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def committed_size(self) -> int:
        if self.reserved_committed and not self.committed:
            return self.size
        return sum(e - s for s, e in self.committed)


@dataclass(frozen=True, slots=True)
class NmtReport:
    """A whole ``jcmd PID VM.native_memory summary|detail|summary.diff`` output (bytes).

    Returned by ``nmt.parse_nmt``, ``nmt.read_nmt`` and ``nmt.run_jcmd``.
    ``enabled`` is False when the JVM answered "Native memory tracking is not
    enabled" (then everything else is empty). ``malloc_total``/``malloc_count``
    come from the ``malloc:`` line of JDK 17+, or are the sum of the
    categories' malloc on older JDKs (``malloc_total_derived`` says which).
    ``malloc_peak`` on JDK 17-22 is the sum of per-category peaks, which were
    not simultaneous: an upper bound (``malloc_peak_derived`` is then True).
    ``format`` is a hint of the output dialect: "jdk8", "jdk11", "jdk17",
    "jdk21", "jdk25" — the oldest family whose markers were seen.
    """

    enabled: bool
    kind: str = "summary"                       # "summary" | "detail" | "summary.diff" | "detail.diff"
    pid: Optional[int] = None
    scale: int = KIB
    total_reserved: int = 0
    total_committed: int = 0
    malloc_total: int = 0
    malloc_count: int = 0
    malloc_total_derived: bool = False
    malloc_peak: Optional[int] = None           # JDK 23+ prints it; else sum of category peaks
    malloc_peak_derived: bool = False           # True: a sum of per-category peaks (an upper bound)
    mmap_reserved: Optional[int] = None
    mmap_committed: Optional[int] = None
    categories: tuple[NmtCategory, ...] = ()
    virtual_regions: tuple[NmtVirtualRegion, ...] = ()
    total_deltas: dict[str, int] = field(default_factory=dict, hash=False)
    format: str = "unknown"
    source: str = ""

    def category(self, name: str) -> Optional[NmtCategory]:
        """The category called ``name`` (case-insensitive), or None."""
        low = name.lower()
        for cat in self.categories:
            if cat.name.lower() == low:
                return cat
        return None

    @property
    def is_detail(self) -> bool:
        return self.kind.startswith("detail")

    @property
    def is_diff(self) -> bool:
        return self.kind.endswith(".diff")


# --------------------------------------------------------------------------- regions


class RegionClass(str, enum.Enum):
    """What a mapping is, as ``regions.classify`` decides."""

    ARENA_HEAP = "arena"            # a glibc non-main arena heap (64 MiB reservation)
    MAIN_HEAP = "heap"              # [heap]: glibc main arena (brk)
    THREAD_STACK = "stack"          # [stack] or a thread stack (guard page + rw)
    JAVA_HEAP = "java-heap"
    CODE_CACHE = "code-cache"
    METASPACE = "metaspace"
    JVM_OTHER = "jvm"               # another reservation NMT detail knows (GC, Class, Thread ...)
    FILE = "file"
    ANON = "anon"                   # other anonymous memory (mmap'd malloc chunks, direct buffers ...)
    GUARD = "guard"                 # ---p spacers not owned by an arena heap
    SPECIAL = "special"             # vdso, vvar, vsyscall

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Region:
    """A mapping with its class and, for arena heaps, the arena it belongs to.

    Returned by ``regions.classify``. ``arena_id`` numbers arenas from 1 in
    address order of their first heap (0 is the main arena / ``[heap]``);
    ``arena_base`` is the arena's ``malloc_state`` address when heap_info was
    read; ``evidence`` says why the class was chosen ("shape+nr+heap_info").
    """

    mapping: Mapping
    cls: RegionClass
    arena_id: Optional[int] = None
    arena_base: Optional[int] = None
    label: str = ""                 # NMT category, or "[stack]" etc.
    evidence: str = ""

    @property
    def start(self) -> int:
        return self.mapping.start

    @property
    def end(self) -> int:
        return self.mapping.end

    @property
    def size(self) -> int:
        return self.mapping.size

    @property
    def rss(self) -> int:
        return self.mapping.rss


@dataclass(frozen=True, slots=True)
class ClassTotal:
    """Per-class sums over regions (bytes). Returned by ``regions.totals``."""

    cls: RegionClass
    count: int
    size: int
    rss: int
    dirty: int
    swap: int


@dataclass(frozen=True, slots=True)
class Arena:
    """One glibc arena: its heaps (mappings) and their sums (bytes).

    Returned by ``regions.arenas``. ``arena_id`` 0 is the main arena
    (``[heap]``); ``base`` is the ``malloc_state`` address when heap_info
    headers were read, else None (then each heap is reported as its own arena).
    """

    arena_id: int
    base: Optional[int]
    regions: tuple[Region, ...]
    size: int
    rss: int
    dirty: int
    swap: int

    @property
    def heap_count(self) -> int:
        return sum(1 for r in self.regions if r.mapping.readable)


@dataclass(frozen=True, slots=True)
class NmtComparison:
    """NMT figures set against the process's smaps (bytes). Returned by ``nmt.compare``.

    ``untracked`` = arena heaps' RSS + ``[heap]`` RSS − NMT malloc total: the
    honest estimate of native memory malloc'd outside NMT (zlib, native
    libraries, glibc overhead and freed-but-resident chunks). ``rss_minus_committed``
    is the popular figure, shown with its caveat: committed Java heap need not be
    resident, so it can mislead and even go negative. ``unknown`` lists resident
    anonymous mappings NMT detail does not know (empty without a detail report).
    """

    report: NmtReport
    process_rss: Optional[int]
    arena_rss: int
    main_heap_rss: int
    arena_count: int                # arenas when heap_info chained them, else heaps
    untracked: int
    rss_minus_committed: Optional[int]
    unknown: tuple[Region, ...] = ()
    arenas_chained: bool = False

    @property
    def malloc_rss(self) -> int:
        return self.arena_rss + self.main_heap_rss

    @property
    def unknown_rss(self) -> int:
        return sum(r.mapping.rss for r in self.unknown)
