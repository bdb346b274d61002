"""``offheap demo``: start a bundled leaking workload, investigate it, check the answer.

The workload (``offheap.demo.workload``) is CPython threads copying JSON push payloads
of three types into libc ``strdup`` memory and never freeing them; it says how many
bytes of each type it leaked. ``run_demo`` starts it, runs ``investigate`` on it,
sets what offheap found beside what the workload says, and ends it by PID.

>>> result = run_demo("/tmp/offheap-demo")               # doctest: +SKIP
>>> print(render_demo(result))                           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from ..errors import OffheapError
from ..investigate import Investigation, investigate, render_summary
from ..report.text import Column, human, render_table
from ..signatures import PayloadType, Signatures
from .workload import MARKERS, SHARES, TYPES

__all__ = ["run_demo", "render_demo", "demo_signatures", "start_workload", "Workload", "DemoResult",
           "DemoError", "TOLERANCE"]

READY_TIMEOUT = 60.0
# A type's share among the three, as found, may differ from the workload's own by this
# fraction of it (the issue's ±10 %).
TOLERANCE = 0.10


class DemoError(OffheapError):
    """The demo workload did not start, or died."""


def demo_signatures() -> Signatures:
    """The three demo payload types (each keyed by its ``"event":"…"`` literal) plus the built-ins."""
    return Signatures.from_types([PayloadType(t, [MARKERS[t]], description=f"demo push payload {t}")
                                  for t in TYPES], mode="add", source="<demo>")


@dataclass
class Workload:
    """A running demo workload: its process and the counts it printed."""

    proc: subprocess.Popen
    stats: dict[str, Any]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def leak(self, mb: float, kind: Optional[str] = None, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        """Ask the workload to leak ``mb`` MiB more (of ``kind`` only, or the mix); returns its new counts."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"leak {mb} {kind or ''}\n".encode())
        self.proc.stdin.flush()
        self.stats = _read_line(self.proc, "leaked", timeout)
        return self.stats


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The child imports this very offheap, wherever it was imported from.
    here = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    return env


def _read_line(proc: subprocess.Popen, word: str, timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise DemoError(f"demo workload (PID {proc.pid}) did not answer {word!r} within {timeout:g} s")
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if ready:
            chunk = os.read(fd, 1)      # byte by byte: nothing past the line is consumed
            if not chunk:
                raise DemoError(f"demo workload (PID {proc.pid}) exited (code {proc.wait()})")
            buf += chunk
        elif proc.poll() is not None:
            raise DemoError(f"demo workload (PID {proc.pid}) exited (code {proc.returncode})")
    text = buf.decode(errors="replace").strip()
    if not text.startswith(word + " "):
        raise DemoError(f"demo workload said {text[:200]!r}, expected {word!r}")
    return json.loads(text[len(word) + 1:])


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


@contextlib.contextmanager
def start_workload(size_mb: float = 64.0, threads: int = 4, seed: int = 1,
                   timeout: float = READY_TIMEOUT) -> Iterator[Workload]:
    """Start the demo workload, wait for its ready line, yield it; always end it by PID."""
    argv = [sys.executable, "-m", "offheap.demo.workload", "--size", str(size_mb), "--threads", str(threads),
            "--seed", str(seed)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=_child_env())
    try:
        yield Workload(proc, _read_line(proc, "ready", timeout))
    finally:
        _end(proc)


@dataclass
class DemoResult:
    """The investigation of the demo workload and the workload's own figures."""

    investigation: Investigation
    workload: dict[str, Any]
    found: dict[str, int]               # bytes offheap attributed to each demo type
    seconds: float

    def shares(self) -> tuple[dict[str, float], dict[str, float]]:
        """(the workload's, offheap's) share of each type among the three, by bytes."""
        leaked = self.workload["bytes"]
        total_l = sum(leaked.values()) or 1
        total_f = sum(self.found.values()) or 1
        return ({t: leaked[t] / total_l for t in TYPES}, {t: self.found[t] / total_f for t in TYPES})

    @property
    def ok(self) -> bool:
        want, got = self.shares()
        return all(abs(got[t] - want[t]) <= TOLERANCE * want[t] for t in TYPES)


def found_bytes(inv: Investigation) -> dict[str, int]:
    """Bytes per demo type in an investigation, whether the types were given (named after
    the type) or discovered (a template holding the type's ``"event":"…"`` literal)."""
    found = {t: 0 for t in TYPES}
    for tf in inv.types:
        for t in TYPES:
            if tf.name == t:
                found[t] += tf.bytes
                break
            pt = _payload_type(inv, tf.name)
            text = tf.name + " " + (pt.description if pt is not None else "")
            if tf.name not in TYPES and MARKERS[t] in text:
                found[t] += tf.bytes
                break
    return found


def _payload_type(inv: Investigation, name: str) -> Optional[PayloadType]:
    try:
        return inv.signatures.type_named(name)
    except KeyError:
        return None


def run_demo(out_dir: Union[str, os.PathLike], size_mb: float = 64.0, threads: int = 4, *,
             discover: bool = False, force: bool = False, budget: Optional[int] = None) -> DemoResult:
    """Start the workload, investigate it into ``out_dir``, end it; return both sides' figures.

    ``discover=True`` uses templates discovered in the dumps instead of the demo's own
    three signatures.
    """
    t0 = time.monotonic()
    with start_workload(size_mb, threads) as w:
        inv = investigate(w.pid, out_dir, signatures=None if discover else demo_signatures(),
                          budget=budget, force=force)
        stats = dict(w.stats)
    return DemoResult(inv, stats, found_bytes(inv), time.monotonic() - t0)


def render_demo(result: DemoResult) -> str:
    """The investigation summary, then the workload's figures beside offheap's."""
    inv = result.investigation
    want, got = result.shares()
    rows = []
    for t in TYPES:
        ok = abs(got[t] - want[t]) <= TOLERANCE * want[t]
        rows.append([t, human(result.workload["bytes"][t]), f"{100 * want[t]:.1f} %",
                     human(result.found[t]), f"{100 * got[t]:.1f} %",
                     f"{100 * result.found[t] / inv.dumped_bytes:.1f} %" if inv.dumped_bytes else "-",
                     "ok" if ok else "MISMATCH"])
    table = render_table((Column("demo type"), Column("leaked (workload)", "r"), Column("share", "r"),
                          Column("found (offheap)", "r"), Column("share", "r"), Column("of dumped", "r"),
                          Column("within ±10 %")), rows)
    verdict = ("offheap found the leaked types in the right proportions"
               if result.ok else "offheap's shares differ from the workload's by more than 10 %")
    return "\n".join([render_summary(inv), "", "The workload's own counts beside offheap's findings "
                      f"(shares among the three types; intended {', '.join(f'{t} {SHARES[t]:.0%}' for t in TYPES)}):",
                      table, f"{verdict}; demo took {result.seconds:.1f} s (workload ended)."])
