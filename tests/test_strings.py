"""offheap.strings against the real GNU strings, on real files, plus the API's errors."""

from __future__ import annotations

import mmap
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import offheap
from offheap import EmptyInputError, InputError, InputTooShortError, iter_strings, strings
from gnu import gnu_offsets, needs_gnu_strings

ENCODINGS = ["s", "S", "b", "l", "B", "L"]


def _real_binaries() -> list[Path]:
    found = []
    java = shutil.which("java")
    if java:
        home = Path(os.path.realpath(java)).parents[1]
        found += sorted(home.glob("lib/server/libjvm.so"))[:1]
    found.append(Path(sys.executable).resolve())
    for lib in ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"):
        if os.path.exists(lib):
            found.append(Path(os.path.realpath(lib)))
            break
    return found


def _pairs(result) -> list[tuple[int, bytes]]:
    return list(zip(result.offsets.tolist(), result.texts()))


@needs_gnu_strings
@pytest.mark.parametrize("path", _real_binaries(), ids=lambda p: p.name)
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_real_binaries_match_gnu_strings(path, encoding):
    for min_len in (4, 10):
        got = strings(path, min_len=min_len, encoding=encoding, window=1 << 20)
        assert _pairs(got) == gnu_offsets(path, min_len, encoding, whitespace=False)


@needs_gnu_strings
def test_whitespace_option_matches_gnu(tmp_path):
    data = b"line one\nline two\r\n\x0bvt\x0cff\x00\ttabbed text\x01" * 50
    f = tmp_path / "ws.bin"
    f.write_bytes(data)
    for ws in (False, True):
        assert _pairs(strings(f, min_len=3, whitespace=ws)) == gnu_offsets(f, 3, "s", ws)


def test_sources_path_bytes_mmap_agree(tmp_path):
    data = b"\x00\x01hello world\x00\xffpayload{json}\x00" * 1000
    f = tmp_path / "d.bin"
    f.write_bytes(data)
    from_path = strings(f)
    from_bytes = strings(data)
    with open(f, "rb") as fh, mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ) as mm:
        from_mmap = strings(mm)
        assert from_mmap.offsets.tolist() == from_path.offsets.tolist()
    assert from_bytes.offsets.tolist() == from_path.offsets.tolist()
    assert from_bytes.lengths.tolist() == from_path.lengths.tolist()
    assert from_path.offsets.dtype == np.uint64 and from_path.lengths.dtype == np.uint64
    assert from_path.text(0) == b"hello world" and from_path.text(1) == b"payload{json}"
    assert len(from_path) == 2000 and from_path.total_bytes == 1000 * (11 + 13)


def test_utf16le_text_and_lengths():
    java_text = "com.example.PushMessage".encode("utf-16-le")
    s = strings(b"\xff\xff" + java_text + b"\x00\x00", encoding="l")
    assert s.offsets.tolist() == [2]
    assert s.lengths.tolist() == [len(java_text)]
    assert s.text(0) == b"com.example.PushMessage"


def test_run_crossing_many_windows_is_reported_once_whole(tmp_path):
    f = tmp_path / "long.bin"
    f.write_bytes(b"\x00" * 100 + b"x" * (5 * 4096 + 7) + b"\x00" + b"tail")
    batches = list(iter_strings(f, window=4096))
    assert len(batches) == 6                      # one batch per window
    found = [(int(o), int(n)) for b in batches for o, n in zip(b.offsets, b.lengths)]
    assert found == [(100, 5 * 4096 + 7), (100 + 5 * 4096 + 8, 4)]


def test_errors_are_precise(tmp_path):
    with pytest.raises(FileNotFoundError):
        strings(tmp_path / "missing.dump")
    with pytest.raises(IsADirectoryError):
        strings(tmp_path)
    empty = tmp_path / "empty.dump"
    empty.write_bytes(b"")
    with pytest.raises(EmptyInputError, match="empty"):
        strings(empty)
    short = tmp_path / "short.dump"
    short.write_bytes(b"abc")
    with pytest.raises(InputTooShortError, match="shorter"):
        strings(short, min_len=4)
    with pytest.raises(InputError, match="minimum string length"):
        strings(b"abcdef", min_len=0)
    with pytest.raises(InputError, match="unknown encoding"):
        strings(b"abcdef", encoding="x")
    assert issubclass(EmptyInputError, ValueError) and issubclass(EmptyInputError, offheap.OffheapError)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_permission_denied_is_permissionerror(tmp_path):
    f = tmp_path / "secret.dump"
    f.write_bytes(b"secret payload data")
    f.chmod(0o600)
    tmp_path.chmod(0o755)
    code = ("import offheap,sys\n"
            "try: offheap.strings(sys.argv[1])\n"
            "except PermissionError: print('denied')\n")
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          sys.executable, "-c", code, str(f)],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "denied", out.stderr
