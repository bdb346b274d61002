"""Run the offheap CLI as a user would: a separate process, on the implementation under test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from offheap import _impl

SRC = str(Path(__file__).resolve().parents[1] / "src")


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    # Import offheap from where the tests import it (an install or src/).
    import offheap
    env["PYTHONPATH"] = os.pathsep.join([str(Path(offheap.__file__).parents[1]), env.get("PYTHONPATH", "")])
    if _impl.implementation() == "python":
        env["OFFHEAP_NO_EXTENSIONS"] = "1"
    else:
        env.pop("OFFHEAP_NO_EXTENSIONS", None)
    return env


def run_cli(*args: str, stdin: bytes | None = None, timeout: float = 120,
            prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*(prefix or []), sys.executable, "-m", "offheap", *args], input=stdin,
                          capture_output=True, timeout=timeout, env=cli_env())
