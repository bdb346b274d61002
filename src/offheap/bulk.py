"""Scan many dumps at once: ``scan_many`` attributes each dump's bytes on all cores.

Dumps are scanned in worker processes, one per core by default (each maps its dump:
nothing is copied between processes). Results come back in the order the dumps were given, one
``DumpResult`` each: an ``Attribution`` or the one-line reason the dump could not be
scanned (a truncated or unreadable dump does not stop the others). ``BulkResult``
adds the totals per class and, per payload type, the dumps it appears in.

Directories expand to their dumps: the regions listed in a ``manifest.json`` (which
also gives each dump's virtual address and expected size), else every regular file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .attribute import DEFAULT_MIN_LEN, OTHER_TEXT, Attribution, attribute
from .errors import InputError, OffheapError
from .scan import check_options
from .signatures import Signatures, builtin

__all__ = ["DumpSpec", "DumpResult", "BulkResult", "expand_paths", "scan_many", "JSON_SCHEMA"]

JSON_SCHEMA = "offheap-scan/2"


@dataclass(frozen=True)
class DumpSpec:
    """One dump to scan: its file, and what its manifest says about it (if any)."""

    path: str
    base_address: int | None = None
    expected_size: int | None = None
    region: str = ""             # e.g. "arena heap 0x7f3c14000000-0x7f3c18000000"
    error: str | None = None     # known before scanning (e.g. an empty directory)
    heap_kind: str | None = None  # "arena" / "main": a glibc heap whose chunks to walk


@dataclass
class DumpResult:
    spec: DumpSpec
    attribution: Attribution | None = None
    error: str | None = None
    seconds: float = 0.0
    heap: Any = None                         # heap.HeapWalk, for glibc heaps
    heap_error: str | None = None
    heap_types: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> live/free chunk bytes

    @property
    def ok(self) -> bool:
        return self.attribution is not None

    @property
    def verdict(self) -> str | None:
        """The heap verdict, with the payload type that dominates it."""
        if self.heap is None:
            return f"heap walk failed: {self.heap_error}" if self.heap_error else None
        from .heap import verdict_with_type
        return verdict_with_type(self.heap, self.heap_types, ignore=(OTHER_TEXT,))


@dataclass
class BulkResult:
    """``scan_many``'s result: per dump in input order, plus totals."""

    dumps: list[DumpResult]
    type_names: list[str]
    seconds: float = 0.0
    totals: dict[str, int] = field(default_factory=dict)
    type_dumps: dict[str, int] = field(default_factory=dict)

    @property
    def failures(self) -> list[DumpResult]:
        return [d for d in self.dumps if not d.ok]

    @property
    def scanned_bytes(self) -> int:
        return sum(d.attribution.size for d in self.dumps if d.ok)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document ``offheap scan --json`` writes, schema ``offheap-scan/2``.

        Top level: ``schema``; ``seconds``; ``scanned_bytes``; ``totals`` (class name ->
        bytes over all dumps scanned: each payload type, ``other text``, ``zero``,
        ``binary``); ``type_dumps`` (type -> number of dumps holding it); ``dumps``, in
        input order, each with ``path``, ``region`` (from the manifest), ``base_address``
        (int or null), ``ok``, ``error`` (one line, or null), ``seconds``,
        ``attribution`` and ``heap``. ``attribution`` (null when not ok): ``size``,
        ``min_len``, ``strings``, ``class_bytes`` (sums to ``size``), ``types`` and
        ``other_text``: per type ``name``, ``bytes``, ``share``, ``strings``,
        ``matches``, ``pattern_matches`` (pattern -> count of its matches inside
        strings; /1 counted every occurrence in the dump), ``example_offsets``,
        ``example_addresses``, ``templates`` (``template``, ``count``, ``bytes``,
        ``example_offset``, ``example_address``, ``example``). ``heap`` (null unless the
        manifest classes the region as a glibc heap): ``verdict``, ``bytes_by_state``,
        ``free_share``, ``types`` (type -> ``live`` / ``free`` chunk bytes),
        ``corruption``; ``heap_error`` says why a walk failed. Fields are only ever
        added within a schema version; a change of meaning bumps it.
        """
        return {
            "schema": JSON_SCHEMA,
            "seconds": round(self.seconds, 3),
            "scanned_bytes": self.scanned_bytes,
            "totals": dict(self.totals),
            "type_dumps": dict(self.type_dumps),
            "dumps": [
                {"path": d.spec.path, "region": d.spec.region, "base_address": d.spec.base_address,
                 "ok": d.ok, "error": d.error, "seconds": round(d.seconds, 3),
                 "attribution": d.attribution.to_dict() if d.ok else None,
                 "heap": None if d.heap is None else {
                     "verdict": d.verdict, "bytes_by_state": dict(d.heap.bytes_by_state),
                     "free_share": round(d.heap.free_share, 4), "types": d.heap_types,
                     "corruption": str(d.heap.corruption) if d.heap.corruption else None},
                 "heap_error": d.heap_error}
                for d in self.dumps],
        }


def _manifest_specs(directory: Path) -> list[DumpSpec]:
    from .manifest import load_manifest

    m = load_manifest(directory)
    specs = []
    for r in m.dumped():
        label = f"{r.cls or 'region'} {r.start:#x}-{r.end:#x}" + (f" {r.path}" if r.path else "")
        kind = {"arena": "arena", "heap": "main"}.get(r.cls or "")
        specs.append(DumpSpec(str(directory / r.file), r.start, r.stored_size, label, heap_kind=kind))
    return specs


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[DumpSpec]:
    """Dumps named by ``paths``: files as given, directories expanded (see module doc)."""
    specs: list[DumpSpec] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            if (path / "manifest.json").exists():
                specs += _manifest_specs(path)
            else:
                files = sorted(f for f in path.iterdir()
                               if f.is_file() and not f.name.startswith(".") and f.suffix != ".json")
                if not files:
                    specs.append(DumpSpec(str(path), error=f"{path}: no dumps in this directory"))
                specs += [DumpSpec(str(f)) for f in files]
        else:
            specs.append(DumpSpec(str(path)))
    return specs


class _Progress:
    """A one-line progress display on a terminal (stderr), silent otherwise."""

    def __init__(self, total: int, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total = total
        self.done = 0
        self.nbytes = 0
        self.t0 = time.perf_counter()
        self.lock = threading.Lock()

    def update(self, result: DumpResult) -> None:
        with self.lock:
            self.done += 1
            if result.ok:
                self.nbytes += result.attribution.size
            if self.enabled:
                dt = max(time.perf_counter() - self.t0, 1e-9)
                width = 30
                fill = int(width * self.done / max(self.total, 1))
                self.stream.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} dumps, "
                                  f"{self.nbytes / 2**20:,.0f} MiB, {self.nbytes / dt / 1e9:.2f} GB/s ")
                self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def check_spec(spec: DumpSpec) -> None:
    """Raise InputError for a dump that cannot be scanned as its manifest describes it
    (a failed expansion, or a file cut short in a copy); OSError when it is missing."""
    if spec.error:
        raise InputError(spec.error)
    if spec.expected_size is not None:
        size = os.stat(spec.path).st_size
        if size != spec.expected_size:
            raise InputError(f"{spec.path}: truncated dump: {size} bytes, manifest says {spec.expected_size}")


def _scan_one(spec: DumpSpec, sigs: Signatures, min_len: int, top: int) -> DumpResult:
    t0 = time.perf_counter()
    if spec.error:
        return DumpResult(spec, error=spec.error)
    try:
        check_spec(spec)
        a = attribute(spec.path, sigs, min_len=min_len, base_address=spec.base_address, top=top,
                      keep_strings=spec.heap_kind is not None)
        result = DumpResult(spec, a)
        if spec.heap_kind:
            _walk(result, sigs)
        result.seconds = time.perf_counter() - t0
        return result
    except OffheapError as exc:
        return DumpResult(spec, error=str(exc), seconds=time.perf_counter() - t0)
    except OSError as exc:
        return DumpResult(spec, error=f"{spec.path}: {exc.strerror or exc}", seconds=time.perf_counter() - t0)


def _walk(result: DumpResult, sigs: Signatures) -> None:
    """Walk a glibc heap's chunks: live vs freed bytes, per payload type."""
    from . import heap

    spec, a = result.spec, result.attribution
    try:
        walk = heap.walk_heap(spec.path, base_address=spec.base_address, kind=spec.heap_kind)
    except OffheapError as exc:
        result.heap_error = str(exc)
        return
    result.heap = walk
    names = sigs.names + [OTHER_TEXT]
    by_state = heap.split_chunk_bytes(walk.chunks, a.string_offsets, a.string_lengths,
                                      a.string_classes, len(names))
    live = by_state[:, heap.IN_USE]
    free = by_state[:, list(heap.FREE_STATES)].sum(axis=1)
    result.heap_types = {n: {"live": int(live[i]), "free": int(free[i])}
                         for i, n in enumerate(names) if live[i] or free[i]}
    # the per-string arrays were only needed for this
    a.string_offsets = a.string_lengths = a.string_classes = None


# -- worker processes -------------------------------------------------------------------
# Processes, not threads: the kernels release the GIL, but the numpy bookkeeping around
# them does not, and two threads measured 1.2x one where two processes gave 2.0x.
_WORKER: dict[str, Any] = {}


def _worker_init(sigs: Signatures, min_len: int, top: int, implementation: str) -> None:
    from . import _impl

    # Ctrl-C reaches the whole process group: the parent handles it (and ends us), so a
    # worker must not print a KeyboardInterrupt traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _impl.select(implementation)        # the parent's choice (the tests run both)
    sigs.pattern_set()
    _WORKER.update(sigs=sigs, min_len=min_len, top=top)


def _worker_ready() -> None:
    """The first task: done once a worker has started and loaded the signatures."""


def _worker_scan(spec: DumpSpec) -> DumpResult:
    return _scan_one(spec, _WORKER["sigs"], _WORKER["min_len"], _WORKER["top"])


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold a Ctrl-C until the block ends (main thread only; elsewhere it cannot arrive).

    Starting a worker writes its setup into a pipe: interrupted mid-write, the worker
    prints an UnpicklingError traceback and the forkserver lingers. A Python-level
    handler (not a blocked signal mask, which the forkserver would inherit) defers it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    except BaseException:
        # A Ctrl-C to the process group also kills workers still starting: the
        # BrokenPipeError that follows is the interrupt, not a reader leaving.
        if caught:
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Start the forkserver (and so the workers it forks) with one BLAS thread.

    numpy's OpenBLAS starts a thread per core at import, and they spin for a while:
    about 0.1 s of CPU per worker here (0.22 s against 0.12), taken from the process
    scanning on the other core.
    The kernels use no BLAS. A value the user set is kept; this process is unchanged
    (its OpenBLAS read the variable at its own import)."""
    name = "OPENBLAS_NUM_THREADS"
    if name in os.environ:
        yield
        return
    os.environ[name] = "1"
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _start_forkserver() -> None:
    """Start multiprocessing's forkserver unless it runs, with this module preloaded
    there and one OpenBLAS thread. numpy and the kernels are then imported once, in
    the forkserver, not in each worker: measured here, a worker was ready ~95 ms
    after it was asked for, ~20 ms with the preload (the first one still waits for
    the forkserver's imports). A process that forks must not run threads: with one
    OpenBLAS thread, importing numpy starts none."""
    import multiprocessing.forkserver as forkserver

    # the modules it preloads: __main__ unless the program set others (the list is
    # only read here, to add ours)
    preload = list(getattr(getattr(forkserver, "_forkserver", None), "_preload_modules", None) or ["__main__"])
    if __name__ not in preload:
        forkserver.set_forkserver_preload(preload + [__name__])
    with _one_blas_thread():
        forkserver.ensure_running()


def _in_processes(specs: Sequence[DumpSpec], sigs: Signatures, min_len: int, top: int, workers: int,
                  done: Callable[[DumpResult], DumpResult]) -> list[DumpResult]:
    """Scan with ``workers - 1`` worker processes and this process as the last worker.

    Starting a worker (a fresh interpreter importing numpy and the kernels) takes
    ~0.1-0.2 s, as long as scanning a few dumps: this process scans dumps from the same
    queue meanwhile instead of waiting, and the workers get dumps only once they are
    up (a first empty task says so), two each at a time, from the queue's other end,
    so a short run never waits for a worker that has not started. A worker that dies
    fails the dumps it held; this process scans the rest.
    """
    import multiprocessing
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from . import _impl

    # forkserver: never fork a process that may be running threads
    ctx = multiprocessing.get_context("forkserver")
    # An ignored SIGINT survives exec: started so, the forkserver and the workers it forks
    # ignore a Ctrl-C sent to the process group (no traceback per worker); we end them.
    # (Only the main thread can set a handler; from another, the preload and the BLAS
    # setting still apply.)
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            _start_forkserver()
        finally:
            signal.signal(signal.SIGINT, previous)
    else:
        _start_forkserver()
    results: list[DumpResult | None] = [None] * len(specs)
    pending = deque(range(len(specs)))
    inflight: dict[Any, int] = {}
    helpers = workers - 1
    pool = ProcessPoolExecutor(max_workers=helpers, mp_context=ctx, initializer=_worker_init,
                               initargs=(sigs, min_len, top, _impl.implementation()))

    def collect(finished) -> None:
        for future in finished:
            i = inflight.pop(future)
            try:
                result = future.result()
            except Exception as exc:  # a worker died (e.g. killed): this dump failed, not the run
                result = DumpResult(specs[i], error=f"{specs[i].path}: worker failed: {exc!r}")
            results[i] = done(result)

    try:
        with _sigint_deferred():
            ready = pool.submit(_worker_ready)
        usable = True       # until a worker dies: then this process scans what is left
        while pending or inflight:
            collect([f for f in inflight if f.done()])
            if usable and ready.done():
                usable = ready.exception() is None
                with _sigint_deferred():
                    # two each: one to work on while this process, busy with
                    # its own dump, is not there to hand out the next; one each
                    # near the end, so no worker is left with two while we idle
                    ahead = 2 * helpers if len(pending) > 2 * helpers else helpers
                    while usable and pending and len(inflight) < ahead:
                        i = pending.pop()       # from the end: this process works from the front
                        try:
                            inflight[pool.submit(_worker_scan, specs[i])] = i
                        except BrokenProcessPool:
                            pending.append(i)
                            usable = False
            if pending:
                i = pending.popleft()
                results[i] = done(_scan_one(specs[i], sigs, min_len, top))
            elif inflight:
                collect(wait(inflight, return_when=FIRST_COMPLETED).done)
    except BaseException:
        # Ctrl-C (or a failing callback): shutdown() would wait for every dump in flight,
        # minutes on big dumps, and an exiting parent leaves its workers running. End them.
        _end_pool(pool)
        raise
    if ready.done():
        pool.shutdown()
    else:
        _end_pool(pool)         # a worker still starting, never given a dump
    return [r for r in results if r is not None]


def _end_pool(pool) -> None:
    """Terminate the pool's workers, then shut it down and wait: for the manager
    thread, which is quick once the workers are gone. Not waiting left that thread to
    the interpreter's exit, where concurrent.futures wrote to its closed wake-up pipe
    and printed a traceback after Ctrl-C (seen in CI)."""
    for worker in list((getattr(pool, "_processes", None) or {}).values()):
        worker.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def scan_many(paths: Iterable[str | os.PathLike] | Sequence[DumpSpec], signatures: Signatures | None = None,
              *, workers: int | None = None, min_len: int = DEFAULT_MIN_LEN, top: int = 10,
              progress: bool | Callable[[DumpResult], None] = True) -> BulkResult:
    """Attribute every dump of ``paths`` (files or directories) with ``signatures``
    (default: the built-in recognisers), ``workers`` at a time (default: all cores).

    With more than one worker, this process scans too and the others are forked by
    multiprocessing's forkserver. If that is not running yet it is started here, with
    ``offheap.bulk`` added to its preloaded modules and ``OPENBLAS_NUM_THREADS=1``
    unless the variable is set: later forkserver processes of the same program
    inherit both.

    >>> r = scan_many(["a.dump", "missing.dump"], progress=False)     # doctest: +SKIP
    >>> [d.ok for d in r.dumps], r.failures[0].error                   # doctest: +SKIP
    ([True, False], 'missing.dump: No such file or directory')
    """
    sigs = builtin() if signatures is None else signatures
    items = list(paths)
    specs = items if items and all(isinstance(s, DumpSpec) for s in items) else expand_paths(items)
    if not specs:
        raise InputError("no dumps to scan")
    workers = workers or os.cpu_count() or 1
    if workers < 1:
        raise InputError(f"workers must be at least 1, not {workers}")
    check_options(min_len, "s")  # a bad length is the caller's error, not every dump's
    sigs.pattern_set()  # build (and validate) the automaton once, before any worker starts
    bar = _Progress(len(specs)) if progress is True else None
    callback = progress if callable(progress) else None
    t0 = time.perf_counter()

    def done(result: DumpResult) -> DumpResult:
        if bar:
            bar.update(result)
        if callback:
            callback(result)
        return result

    try:
        if workers == 1 or len(specs) == 1:
            results = [done(_scan_one(s, sigs, min_len, top)) for s in specs]
        else:
            results = _in_processes(specs, sigs, min_len, top, min(workers, len(specs)), done)
    finally:
        if bar:
            bar.close()

    totals: dict[str, int] = {}
    type_dumps: dict[str, int] = {}
    for r in results:
        if not r.ok:
            continue
        for name, nbytes in r.attribution.class_bytes.items():
            totals[name] = totals.get(name, 0) + nbytes
        for t in r.attribution.types:
            if t.bytes:
                type_dumps[t.name] = type_dumps.get(t.name, 0) + 1
    return BulkResult(results, sigs.names, time.perf_counter() - t0, totals, type_dumps)
