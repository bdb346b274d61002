"""The real GNU strings, as the oracle tests compare against."""

from __future__ import annotations

import shutil
import subprocess

import pytest

GNU_STRINGS = shutil.which("strings")

needs_gnu_strings = pytest.mark.skipif(GNU_STRINGS is None, reason="GNU strings (binutils) is not installed")


def gnu_strings(path, *options: str) -> bytes:
    """stdout of ``strings -a OPTIONS PATH``."""
    return subprocess.run([GNU_STRINGS, "-a", *options, str(path)], check=True,
                          capture_output=True, timeout=120).stdout


def gnu_offsets(path, min_len: int, encoding: str, whitespace: bool) -> list[tuple[int, bytes]]:
    """(offset, text) pairs from GNU strings, parsed from ``-t d`` output with a NUL separator."""
    opts = ["-n", str(min_len), "-e", encoding, "-t", "d", "-s", "\x01\x02\x03"]
    if whitespace:
        opts.append("-w")
    out = gnu_strings(path, *opts)
    pairs = []
    for item in out.split(b"\x01\x02\x03")[:-1]:
        head, text = item.lstrip(b" ").split(b" ", 1)
        pairs.append((int(head), text))
    return pairs
