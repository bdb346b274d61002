"""`offheap strings` is a drop-in for GNU `strings -a`: byte-identical stdout."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from clirun import run_cli
from gnu import GNU_STRINGS, needs_gnu_strings

import subprocess

pytestmark = needs_gnu_strings

OPTION_SETS = [
    [],
    ["-n", "10", "-t", "x"],
    ["-t", "d", "-e", "l"],
    ["-t", "o", "-w", "-f"],
    ["-8", "-e", "S", "-s", "::"],
    ["-e", "b", "-n", "3"],
    ["-e", "L", "-f", "-t", "x"],
    ["-e", "B"],
    ["--bytes=6", "--radix=x", "--include-all-whitespace"],
]


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    blob = (b"\x00\x00{\"event\":\"unread_count\",\"uid\":42}\x00\x01\x02"
            + "java.lang.String".encode("utf-16-le") + b"\xff\xfe"
            + "BigEndianText".encode("utf-32-be") + b"\t tab\n\r\x0bline\x80\xfehigh bytes\x90"
            + bytes(range(256)))
    a = d / "a.bin"
    a.write_bytes(blob * 300 + b"open run at EOF")
    b = d / "b.bin"
    b.write_bytes(open(sys.executable, "rb").read(300_000))
    return a, b


def _gnu(args, files, stdin=None):
    return subprocess.run([GNU_STRINGS, "-a", *args, *map(str, files)], input=stdin,
                          capture_output=True, timeout=120).stdout


@pytest.mark.parametrize("args", OPTION_SETS, ids=lambda a: " ".join(a) or "default")
def test_stdout_identical_to_gnu_for_several_files(sample, args):
    got = run_cli("strings", *args, *map(str, sample))
    assert got.returncode == 0, got.stderr
    assert got.stdout == _gnu(args, sample)


@pytest.mark.parametrize("args", [["-t", "x"], ["-e", "l", "-n", "3"], ["-n", "2000"]])
def test_small_windows_stream_runs_across_edges(sample, tmp_path, args):
    f = tmp_path / "edges.bin"
    f.write_bytes(b"A" * 10_000 + b"\x00" + b"B" * 3 + b"\x01" + b"x\x00" * 3000 + b"CC" + sample[0].read_bytes())
    got = run_cli("strings", "--window", "4096", *args, str(f))
    assert got.stdout == _gnu(args, [f])
    piped = run_cli("strings", "--window", "100", *args, stdin=f.read_bytes())
    assert piped.stdout == _gnu(args, [], stdin=f.read_bytes())


def test_stdin_dash_and_file_names(sample):
    data = sample[0].read_bytes()
    got = run_cli("strings", "-f", "-", stdin=data)
    assert got.returncode == 0
    assert got.stdout == _gnu(["-f"], [], stdin=data)
    assert got.stdout.startswith(b"{standard input}: ")


def _one_line_error(result, *needles):
    assert result.returncode != 0
    err = result.stderr.decode()
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_bad_input_is_one_line_and_nonzero(tmp_path, sample):
    _one_line_error(run_cli("strings", str(tmp_path / "nope.dump")), "nope.dump", "No such file")
    _one_line_error(run_cli("strings", str(tmp_path)), "directory")
    empty = tmp_path / "empty.dump"
    empty.write_bytes(b"")
    _one_line_error(run_cli("strings", str(empty)), "empty")
    short = tmp_path / "short.dump"
    short.write_bytes(b"abc")
    _one_line_error(run_cli("strings", "-n", "5", str(short)), "shorter")
    _one_line_error(run_cli("strings", "-n", "0", str(sample[0])), "minimum string length")
    _one_line_error(run_cli("strings", "-e", "q", str(sample[0])), "encoding")
    _one_line_error(run_cli("strings", stdin=b""), "empty")


def test_one_bad_file_does_not_stop_the_others(tmp_path, sample):
    got = run_cli("strings", str(tmp_path / "missing"), str(sample[1]))
    assert got.returncode == 1
    assert got.stdout == _gnu([], [sample[1]])
    assert b"missing" in got.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_no_permission(tmp_path):
    d = tmp_path / "pub"
    d.mkdir()
    tmp_path.chmod(0o755)
    d.chmod(0o755)
    f = d / "root-only.dump"
    f.write_bytes(b"secret payload")
    f.chmod(0o600)
    result = run_cli("strings", str(f),
                     prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
    _one_line_error(result, "offheap strings: ", "root-only.dump", "Permission denied")


def test_reader_leaving_is_not_an_error(sample):
    p = subprocess.Popen([sys.executable, "-m", "offheap", "strings", str(sample[1]), str(sample[0])],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=__import__("clirun").cli_env())
    try:
        p.stdout.read(10)
        p.stdout.close()
        err = p.stderr.read()
        assert p.wait(timeout=60) == 0
        assert b"Traceback" not in err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.parametrize("n", ["0x10", "010", " 9", "+8"])
def test_min_len_is_read_like_strtoul(sample, n):
    got = run_cli("strings", "-n", n, str(sample[1]))
    assert got.returncode == 0, got.stderr
    assert got.stdout == _gnu(["-n", n], [sample[1]])


def test_min_len_garbage_is_refused(sample):
    got = run_cli("strings", "-n", "9x", str(sample[1]))
    assert got.returncode != 0 and b"invalid integer argument 9x" in got.stderr
