"""``offheap regions`` and ``offheap nmt`` as a user runs them: a separate process."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from clirun import run_cli
from shared_fixtures import fixture

pytestmark = pytest.mark.single_impl

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


def out(res: subprocess.CompletedProcess) -> str:
    return res.stdout.decode()


def test_regions_on_capture_sorted_by_rss():
    res = run_cli("regions", str(fixture("c_8x60MB.smaps")), "--top", "8")
    assert res.returncode == 0, res.stderr
    lines = out(res).splitlines()
    header = lines[1].split()
    assert header[:4] == ["Address", "Kbytes", "RSS", "Dirty"] and "Class" in header
    rows = lines[2:10]
    # the 8 full heaps come first: 65536 kB resident each, class arena
    assert all(r.split()[1:3] == ["65536", "65536"] and " arena " in r for r in rows)
    assert lines[10].startswith("-")
    total = lines[11].split()
    assert total[:5] == ["total", "kB", "1182192", "617892", "616388"]   # footer covers all 72
    text = out(res)
    assert "glibc arenas" in text and "Totals per class" in text
    arena_total = next(ln for ln in text.splitlines() if ln.startswith("arena "))
    assert arena_total.split()[1:4] == ["24", "1048576", "571768"]


def test_regions_sort_size_and_nmt_detail():
    res = run_cli("regions", str(fixture("jvm_deflater600.smaps")), "--sort", "size", "--top", "3",
                  "--nmt", str(fixture("nmt_detail_jdk17_deflater100.txt")))
    assert res.returncode == 0, res.stderr
    text = out(res)
    java = next(ln for ln in text.splitlines() if ln.startswith("00000000f0000000"))
    assert "java-heap" in java and "Java Heap" in java
    assert "java-heap" in [ln.split()[0] for ln in text.splitlines()[-12:]]


def test_regions_errors_are_one_line():
    res = run_cli("regions", "/nonexistent/smaps")
    assert res.returncode == 1 and res.stdout == b""
    assert res.stderr.decode().count("\n") == 1 and "no such file" in res.stderr.decode()
    res = run_cli("regions", str(fixture("c_8x60MB.smaps")), "--top", "0")
    assert res.returncode == 2 and b"must be > 0" in res.stderr
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    res = run_cli("regions", str(p.pid))
    assert res.returncode == 1 and f"no process with PID {p.pid}" in res.stderr.decode()
    assert b"Traceback" not in res.stderr


def test_regions_summary_nmt_is_refused():
    res = run_cli("regions", str(fixture("jvm_deflater600.smaps")),
                  "--nmt", str(fixture("nmt_summary_jdk17_deflater300.txt")))
    assert res.returncode == 2 and b"detail" in res.stderr


def test_regions_malformed_smaps_names_line(tmp_path):
    lines = fixture("c_8x60MB.smaps").read_bytes().splitlines(keepends=True)
    lines.insert(4, b"oops\n")
    bad = tmp_path / "bad.smaps"
    bad.write_bytes(b"".join(lines))
    res = run_cli("regions", str(bad))
    assert res.returncode == 1
    assert f"{bad}:5:" in res.stderr.decode() and b"Traceback" not in res.stderr


def test_regions_live_pid():
    p = subprocess.Popen([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(600)"],
                         stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ready\n"
        res = run_cli("regions", str(p.pid), "--sort", "addr")
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        p.stdout.close()
    assert res.returncode == 0, res.stderr
    text = out(res)
    assert f"(PID {p.pid})" in text.splitlines()[0]
    assert "[heap]" in text and "[stack]" in text


def test_nmt_file_with_smaps_untracked_figure():
    res = run_cli("nmt", str(fixture("nmt_summary_jdk17_deflater300.txt")),
                  "--smaps", str(fixture("jvm_deflater600.smaps")))
    assert res.returncode == 0, res.stderr
    text = out(res)
    assert "NMT summary of PID 17164 (format jdk17)" in text
    assert "malloc total 8.34 MiB in 9702 allocations" in text
    # arenas 495204 kB + [heap] 108 kB - NMT malloc 8536 kB = 486776 kB = 475.4 MiB
    assert "untracked native (arenas + [heap] - NMT malloc): 475.4 MiB" in text
    assert "RSS - NMT committed" in text and "caveat" in text
    java = next(ln for ln in text.splitlines() if ln.startswith("Java Heap"))
    assert java.split()[2:4] == ["262144", "262144"]


def test_nmt_detail_lists_unknown_mappings():
    res = run_cli("nmt", str(fixture("nmt_detail_jdk17_deflater100.txt")),
                  "--smaps", str(fixture("jvm_deflater600.smaps")), "--top", "5")
    assert res.returncode == 0, res.stderr
    text = out(res)
    assert "Mappings NMT knows nothing about:" in text
    section = text.split("Mappings NMT knows nothing about:")[1]
    assert " arena " in section and "java-heap" not in section


def test_nmt_disabled_and_other_jdks():
    res = run_cli("nmt", str(fixture("nmt_disabled_jdk17.txt")))
    assert res.returncode == 3 and b"not enabled" in res.stdout
    for name in ("nmt_summary_jdk8_direct300.txt", "nmt_summary_jdk25_burst300.txt"):
        res = run_cli("nmt", str(DATA / name))
        assert res.returncode == 0, res.stderr
    assert b"(derived from the categories)" in run_cli("nmt", str(DATA / "nmt_summary_jdk8_direct300.txt")).stdout


def test_nmt_malformed_file(tmp_path):
    bad = tmp_path / "nmt.txt"
    bad.write_text("1:\n\nNative Memory Tracking:\n\nTotal: reserved=1KB, committed=1KB\nwhat is this\n")
    res = run_cli("nmt", str(bad))
    assert res.returncode == 1 and f"{bad}:6:" in res.stderr.decode()
    assert res.stderr.decode().count("\n") == 1


@pytest.mark.skipif(not (shutil.which("java") and shutil.which("jcmd")), reason="java and jcmd not installed")
def test_nmt_live_jvm_detail():
    jvm = subprocess.Popen(
        [shutil.which("java"), "-Xmx64m", "-XX:+UseSerialGC", "-XX:NativeMemoryTracking=detail",
         str(HERE / "live" / "NmtIdle.java"), "30"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        # jcmd before the JVM installed its handlers kills it: wait for its "ready" line.
        ready, _, _ = select.select([jvm.stdout], [], [], 60)
        assert ready and jvm.stdout.readline().startswith(b"ready ")
        res = run_cli("nmt", str(jvm.pid), "--detail", "--timeout", "60")
    finally:
        os.kill(jvm.pid, signal.SIGKILL)
        jvm.wait()
        jvm.stdin.close()
        jvm.stdout.close()
    assert res.returncode == 0, res.stderr
    text = out(res)
    assert f"NMT detail of PID {jvm.pid}" in text
    assert "untracked native (arenas + [heap] - NMT malloc)" in text
    assert "Mappings NMT knows nothing about:" in text
