"""Building the C workloads tests run, and ending the processes tests start: by PID,
always, in a ``finally``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest


def compile_c(source: Path, binary: Path, *flags: str) -> subprocess.CompletedProcess:
    """``gcc -O1 -pthread FLAGS -o BINARY SOURCE``, the result for the caller to judge
    (a static link may fail for want of a static libc); skips the test without gcc."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip(f"gcc is not installed: cannot build {source.name}")
    return subprocess.run([gcc, "-O1", "-pthread", *flags, "-o", str(binary), str(source)],
                          capture_output=True, text=True, timeout=120)


def end_process(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGCONT (a test may have stopped it), SIGKILL by PID, reap, close its pipes."""
    if proc.poll() is None:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def end_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group ``proc`` leads (started with start_new_session: chromium's
    helpers, scan workers), by its id, and reap ``proc``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
