"""Fixtures for tests that start real leaking processes.

``leaky_binary`` compiles ``leaky.c`` once per session; ``start_leaky(*args)``
is a context manager that starts it, waits for its ``ready {json}`` line and
yields a ``Leaky`` (pid, stats), and always ends the process by its PID::

    def test_x(start_leaky):
        with start_leaky("-t", "2", "-k", "2048") as target:
            ... target.pid, target.stats["payloads"] ...
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from procs import compile_c, end_process

HERE = Path(__file__).resolve().parent
READY_TIMEOUT = 20.0


@dataclass
class Leaky:
    """A running leaky process: ``stats`` is the JSON it printed after ``ready``."""

    proc: subprocess.Popen
    stats: dict[str, Any]

    @property
    def pid(self) -> int:
        return self.proc.pid


def compile_leaky(out_dir: Path) -> Path:
    binary = out_dir / "leaky"
    res = compile_c(HERE / "leaky.c", binary, "-Wall")
    assert res.returncode == 0, f"gcc failed:\n{res.stderr}"
    return binary


@pytest.fixture(scope="session")
def leaky_binary(tmp_path_factory) -> Path:
    """leaky.c compiled once for the session."""
    return compile_leaky(tmp_path_factory.mktemp("leaky-build"))


@contextlib.contextmanager
def run_leaky(binary: Path, *args: str, timeout: float = READY_TIMEOUT) -> Iterator[Leaky]:
    """Start ``binary args``, wait for ``ready {json}``, yield it, then end it by PID."""
    proc = subprocess.Popen([str(binary), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        line = b""
        fd = proc.stdout.fileno()
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.poll() is not None else ""
                raise AssertionError(f"leaky {' '.join(args)} did not get ready: {line!r} {err}")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    continue
                line += chunk
        text = line.decode()
        assert text.startswith("ready "), text
        yield Leaky(proc, json.loads(text[len("ready "):]))
    finally:
        end_process(proc)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture
def start_leaky(leaky_binary):
    """``with start_leaky("-t", "2") as target:`` — a leaky process ended by PID afterwards."""
    def start(*args: str, timeout: float = READY_TIMEOUT):
        return run_leaky(leaky_binary, *args, timeout=timeout)
    return start


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    """SIGSTOP the process (waiting until it shows state T), SIGCONT on the way out."""
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rpartition(b")")[2].split()[0]
            if state in (b"T", b"t"):
                break
            time.sleep(0.005)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


@pytest.fixture
def sigstop():
    """``with sigstop(pid):`` — the process stays SIGSTOPped inside the block."""
    return stopped
