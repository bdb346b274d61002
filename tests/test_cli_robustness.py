"""The CLI as a demanding user drives it: bad PIDs, bad files, bad options, Ctrl-C.

Each test pins one problem found by trying every subcommand on hostile input: the
answer must be one line on stderr and a non-zero exit, never a traceback, and a
failed command must leave nothing behind (no directory, no process, no temp file).
"""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clirun import cli_env, run_cli
from offheap import nmt, scan_many
from offheap.errors import InputError, JcmdError, KernelThread
from procs import end_group


def _one_line_error(result: subprocess.CompletedProcess, *needles: str, code: int = 1) -> str:
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == code, (result.returncode, err)
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def _is_kernel_thread(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()
    except OSError:
        return False
    return len(fields) > 6 and bool(int(fields[6]) & 0x00200000)


def _text_dump(path: Path, size: int, seed: int = 1) -> Path:
    """Random bytes with JSON pushes between them: something for every kernel to chew on."""
    rng = random.Random(seed)
    parts, n = [], 0
    while n < size:
        chunk = rng.randbytes(rng.randrange(16, 200)) + (
            b'{"event":"unread_count","uid":%d,"count":%d}' % (rng.randrange(10**6), rng.randrange(500)))
        parts.append(chunk)
        n += len(chunk)
    path.write_bytes(b"".join(parts)[:size])
    return path


@pytest.fixture
def sleeper():
    """A live process of ours with a [heap] (python), ended by PID."""
    p = subprocess.Popen([sys.executable, "-c", "import time; x = [bytes(300) for _ in range(20000)]; "
                          "print('ready', flush=True); time.sleep(120)"], stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == b"ready"
        yield p.pid
    finally:
        p.kill()
        p.wait()


# --------------------------------------------------------------------------- process side

@pytest.mark.single_impl
@pytest.mark.skipif(not _is_kernel_thread(2), reason="PID 2 is not a kernel thread here")
def test_kernel_thread_is_named_and_leaves_nothing(tmp_path):
    # Was "no process with PID 2" (it exists), and investigate left an empty directory
    # behind that the next run refused as "already holds an investigation".
    for args in (["regions", "2"], ["dump", "2", "-o", str(tmp_path / "d")],
                 ["investigate", "2", "-o", str(tmp_path / "i")]):
        _one_line_error(run_cli(*args), "kernel thread")
    assert not (tmp_path / "d").exists() and not (tmp_path / "i").exists()
    with pytest.raises(KernelThread):
        nmt.run_jcmd(2, jcmd="/bin/true")


@pytest.mark.single_impl
def test_nmt_never_signals_a_process_that_is_no_jvm():
    # jcmd attaches with SIGQUIT, whose default action kills a process that is no JVM.
    p = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGQUIT, "
                          "signal.SIG_DFL); print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == b"ready"
        with pytest.raises(JcmdError, match="not a HotSpot JVM"):
            nmt.run_jcmd(p.pid, jcmd="/bin/true")
        time.sleep(0.2)
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()


@pytest.mark.single_impl
def test_budget_below_every_candidate_says_so(tmp_path, sleeper):
    out = tmp_path / "inv"
    r = run_cli("investigate", str(sleeper), "-o", str(out), "--budget", "1K", "--no-html")
    assert r.returncode == 0, r.stderr
    text = b" ".join(r.stdout.split())        # the summary wraps long notes
    assert b"below the RSS of the smallest candidate region" in text and b"raise --budget" in text
    assert b"no arena heap, [heap]" not in r.stdout


@pytest.mark.single_impl
def test_zero_sizes_are_refused_before_any_directory(tmp_path, sleeper):
    r = run_cli("dump", str(sleeper), "-o", str(tmp_path / "d"), "--max-bytes", "0")
    assert r.returncode == 2 and b"more than 0 bytes" in r.stderr and b"Traceback" not in r.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.single_impl
def test_truncated_region_file_is_reported_by_heap_and_templates(tmp_path, sleeper):
    d = tmp_path / "d"
    r = run_cli("dump", str(sleeper), "-o", str(d))
    assert r.returncode == 0, r.stderr
    manifest = json.loads((d / "manifest.json").read_bytes())
    heap = next(e for e in manifest["regions"] if e.get("file") and e.get("class") == "heap")
    os.truncate(d / heap["file"], 1000)
    for args in (["heap", str(d)], ["heap", str(d / heap["file"])], ["templates", str(d)]):
        _one_line_error(run_cli(*args), "truncated dump")


# --------------------------------------------------------------------------- files

def test_report_files_are_private_and_directories_refused(tmp_path):
    dump = _text_dump(tmp_path / "a.dump", 20_000)
    out = tmp_path / "scan.json"
    r = run_cli("scan", str(dump), "--json", str(out), "--csv", str(tmp_path / "scan.csv"))
    assert r.returncode == 0, r.stderr
    for f in (out, tmp_path / "scan.csv"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    # refused before scanning, naming the path given (not a temp file), leaving none behind
    _one_line_error(run_cli("scan", str(dump), "--json", str(out)), "exists")
    _one_line_error(run_cli("scan", str(dump), "--json", str(tmp_path), "--force"), "is a directory")
    _one_line_error(run_cli("scan", str(dump), "--json", str(tmp_path / "no" / "x.json")),
                    f"{tmp_path / 'no' / 'x.json'}: cannot write")
    _one_line_error(run_cli("templates", str(dump), "--write-signatures", str(out)), "exists")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.dump", "scan.csv", "scan.json"]


def test_min_len_out_of_range_is_one_line(tmp_path):
    dump = _text_dump(tmp_path / "a.dump", 5_000)
    # was an OverflowError traceback from the kernel
    for cmd in ("scan", "templates", "strings"):
        _one_line_error(run_cli(cmd, "-n", "99999999999", str(dump)), "at most 2147483647")
    # was a per-dump failure printed after an empty table
    r = run_cli("scan", "-n", "0", str(dump))
    _one_line_error(r, "at least 1")
    assert r.stdout == b""
    with pytest.raises(InputError):
        scan_many([str(dump)], min_len=0, progress=False)


def test_malformed_captures_name_the_file(tmp_path):
    (tmp_path / "empty.smaps").write_bytes(b"")
    _one_line_error(run_cli("regions", str(tmp_path / "empty.smaps")), "empty.smaps", "no mappings")
    d = tmp_path / "dumps"
    d.mkdir()
    (d / "manifest.json").write_text('{"foo": 1}')
    for cmd in ("scan", "heap", "templates"):
        _one_line_error(run_cli(cmd, str(d)), str(d / "manifest.json"), "not an offheap dump manifest")


# --------------------------------------------------------------------------- Ctrl-C

@pytest.mark.single_impl
@pytest.mark.parametrize("workers", ["1", "2"])
def test_ctrl_c_mid_scan_exits_130_and_leaves_no_process(tmp_path, workers):
    for i in range(4):      # ~10 s of work for the twin: it is still busy when interrupted
        _text_dump(tmp_path / f"{i}.dump", 16 << 20, seed=i)
    env = dict(cli_env(), OFFHEAP_NO_EXTENSIONS="1")
    p = subprocess.Popen([sys.executable, "-m", "offheap", "scan", str(tmp_path), "--workers", workers],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        time.sleep(2)
        assert p.poll() is None, p.stderr.read()
        os.killpg(p.pid, signal.SIGINT)          # as a terminal's Ctrl-C: the whole group
        out, err = p.communicate(timeout=30)
        assert p.returncode == 130, err
        assert err.decode().strip() == "offheap scan: interrupted", err
        deadline = time.monotonic() + 10
        while True:                              # workers and forkserver end with the parent
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, "processes of the scan still running"
            time.sleep(0.1)
    finally:
        end_group(p)
