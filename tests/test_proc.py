"""/proc parsing: real captures in ../shared/fixtures, and live processes this test starts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from offheap import proc
from offheap.errors import AccessDenied, InputError, NoSuchProcess, ParseError, ZombieProcess
from shared_fixtures import FIXTURES, fixture
from procs import end_process

# Parsing only: the kernels are not involved, run once.
pytestmark = pytest.mark.single_impl

KIB = 1024


# --------------------------------------------------------------------------- fixtures

def test_smaps_c_8x60mb_every_field():
    maps = proc.parse_smaps(fixture("c_8x60MB.smaps").read_bytes())
    assert len(maps) == 72
    assert all(m.has_smaps for m in maps)
    first = maps[0]
    assert (first.start, first.end, first.perms) == (0x56096f153000, 0x56096f154000, "r--p")
    assert first.path == "/opt/pushsvc/bin/leaky_push" and first.inode == 2146465 and first.dev == "fe:00"
    assert first.vmflags == frozenset({"rd", "mr", "mw", "me"})
    assert first.counters == {"THPeligible": 0, "ProtectionKey": 0}
    # every kB field of the block, in bytes
    assert set(first.fields) >= {"Size", "Rss", "Pss", "Pss_Dirty", "Private_Dirty", "Swap", "SwapPss",
                                 "AnonHugePages", "KSM", "Locked", "Referenced", "Anonymous"}
    assert first.size == first.get("Size") == 4 * KIB
    # sums agree with smaps_rollup and status of the same capture
    rollup = proc.parse_smaps_rollup(fixture("c_8x60MB.smaps_rollup").read_bytes())
    assert sum(m.rss for m in maps) == rollup.rss == 617892 * KIB
    assert sum(m.private_dirty for m in maps) == rollup.private_dirty == 616388 * KIB
    full = [m for m in maps if m.size == 64 << 20 and m.perms == "rw-p"]
    assert len(full) == 8 and all(m.rss == 65536 * KIB and "nr" in m.vmflags for m in full)
    heap = [m for m in maps if m.path == "[heap]"]
    assert len(heap) == 1 and heap[0].is_anonymous and not heap[0].is_file_backed


def test_smaps_and_maps_agree_on_ranges():
    for name in ("c_8x60MB", "jvm_deflater600"):
        smaps = proc.parse_smaps(fixture(f"{name}.smaps").read_bytes())
        maps = proc.parse_maps(fixture(f"{name}.maps").read_bytes())
        assert [(m.start, m.end, m.perms, m.path) for m in maps] == \
               [(m.start, m.end, m.perms, m.path) for m in smaps]
        assert not any(m.has_smaps for m in maps)


def test_jvm_status_and_rollup():
    st = proc.parse_status(fixture("jvm_deflater600.status").read_bytes())
    assert st.name == "java" and st.pid == 18694 and st.state == "S" and st.state_text == "sleeping"
    assert st.vm_rss == 693996 * KIB
    assert st.raw["Name"] == "java"
    rollup = proc.parse_smaps_rollup(fixture("jvm_deflater600.smaps_rollup").read_bytes())
    assert rollup.rss == st.vm_rss
    smaps = proc.parse_smaps(fixture("jvm_deflater600.smaps").read_bytes())
    assert len(smaps) == 227 and sum(m.rss for m in smaps) == rollup.rss
    c = proc.parse_status(fixture("c_8x60MB.status").read_bytes())
    assert (c.name, c.pid, c.ppid, c.threads) == ("leaky_c", 12682, 12641, 9)
    assert (c.vm_hwm, c.rss_anon, c.rss_file) == (617892 * KIB, 616376 * KIB, 1516 * KIB)


def test_snapshot_from_fixture_file_uses_siblings():
    snap = proc.load_snapshot(fixture("c_8x60MB.smaps"))
    assert snap.has_smaps and snap.pid == 12682
    assert snap.rollup is not None and snap.rss == 617892 * KIB
    assert snap.status is not None and snap.status.name == "leaky_c"
    assert snap.cmdline is None and "environ" in snap.missing


def test_snapshot_from_directory_plain_names(tmp_path):
    for kind in ("smaps", "smaps_rollup", "status"):
        shutil.copy(fixture(f"jvm_deflater600.{kind}"), tmp_path / kind)
    (tmp_path / "cmdline").write_bytes(b"java\0-Xmx256m\0Leak\0")
    (tmp_path / "environ").write_bytes(b"PATH=/usr/bin\0MALLOC_ARENA_MAX=4\0")
    snap = proc.load_snapshot(tmp_path)
    assert snap.pid == 18694 and len(snap.mappings) == 227
    assert snap.cmdline == ("java", "-Xmx256m", "Leak")
    assert snap.malloc.arena_max == 4


def test_directory_with_two_processes_is_ambiguous():
    fixture("c_8x60MB.smaps")
    with pytest.raises(InputError, match="several processes"):
        proc.load_snapshot(FIXTURES)


def test_maps_only_snapshot(tmp_path):
    shutil.copy(fixture("c_8x60MB.maps"), tmp_path / "maps")
    snap = proc.load_snapshot(tmp_path)
    assert not snap.has_smaps and len(snap.mappings) == 72 and snap.rss == 0


def test_bare_file_decided_by_content(tmp_path):
    p = tmp_path / "capture.txt"
    shutil.copy(fixture("c_8x60MB.smaps"), p)
    assert proc.load_snapshot(p).has_smaps
    shutil.copy(fixture("c_8x60MB.maps"), p)
    assert not proc.load_snapshot(p).has_smaps


def test_missing_path_is_input_error(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        proc.load_snapshot(tmp_path / "nope")


# --------------------------------------------------------------------------- malformed input

def _smaps_lines() -> list[bytes]:
    return fixture("c_8x60MB.smaps").read_bytes().splitlines(keepends=True)


def test_garbage_line_is_parse_error_with_line():
    lines = _smaps_lines()
    lines.insert(9, b"this is not smaps\n")
    with pytest.raises(ParseError) as info:
        proc.parse_smaps(b"".join(lines), "x.smaps")
    assert info.value.source == "x.smaps" and info.value.line == 10
    assert "x.smaps:10:" in str(info.value)


def test_field_before_header_and_bad_numbers():
    with pytest.raises(ParseError) as info:
        proc.parse_smaps(b"Rss: 4 kB\n", "s")
    assert info.value.line == 1
    with pytest.raises(ParseError) as info:
        proc.parse_smaps(b"00400000-00401000 r-xp 00000000 fe:00 1 /bin/x\nRss: four kB\n", "s")
    assert info.value.line == 2
    with pytest.raises(ParseError):
        proc.parse_maps(b"00401000-00400000 r-xp 00000000 fe:00 1 /bin/x\n")    # end < start
    with pytest.raises(ParseError):
        proc.parse_maps(b"00400000-00401000 rwzp 00000000 fe:00 1 /bin/x\n")    # bad perms


def test_new_kernel_field_names_are_kept():
    # Kernels add fields (Pss_Dirty in 6.0, KSM in 6.4); a well-formed unknown name is kept.
    data = b"00400000-00401000 r-xp 00000000 fe:00 1 /bin/x\nRss: 4 kB\nFutureThing:  8 kB\nVmFlags: rd ex\n"
    (m,) = proc.parse_smaps(data)
    assert m.get("FutureThing") == 8 * KIB and m.vmflags == {"rd", "ex"}


def test_paths_with_spaces_and_deleted_and_odd_bytes():
    data = (b"7f0000000000-7f0000001000 rw-s 00000000 00:01 99 /dev/shm/a b (deleted)\n"
            b"7f0000001000-7f0000002000 r--p 00000000 fe:00 7 /tmp/\xff\xfe\n"
            b"7f0000002000-7f0000003000 rw-p 00000000 00:00 0 [anon:java heap]\n")
    a, b, c = proc.parse_maps(data)
    assert a.path == "/dev/shm/a b (deleted)" and a.shared and a.is_file_backed
    assert os.fsencode(b.path) == b"/tmp/\xff\xfe"
    assert c.is_anonymous and not c.is_file_backed


def test_status_errors():
    with pytest.raises(ParseError, match="VmRSS"):
        proc.parse_status(b"Name:\tx\nState:\tS (sleeping)\nPid:\t1\nVmRSS:\tlots\n", "st")
    with pytest.raises(ParseError):
        proc.parse_status(b"Name:\tx\n", "st")
    with pytest.raises(ParseError) as info:
        proc.parse_status(b"Name:\tx\nno colon here\n", "st")
    assert info.value.line == 2


def test_rollup_errors():
    with pytest.raises(ParseError):
        proc.parse_smaps_rollup(b"", "r")
    with pytest.raises(ParseError) as info:
        proc.parse_smaps_rollup(b"00400000-00401000 ---p 00000000 00:00 0 [rollup]\nRss 4 kB\n", "r")
    assert info.value.line == 2


def test_environ_and_malloc_settings():
    env = proc.parse_environ(b"A=1\0MALLOC_ARENA_MAX=2\0GLIBC_TUNABLES=glibc.malloc.arena_max=3:"
                             b"glibc.malloc.trim_threshold=4096\0MALLOC_TOP_PAD_=0\0stray\0")
    assert env["A"] == "1" and "stray" not in env
    ms = proc.malloc_settings(env)
    assert ms.malloc_arena_max == "2" and ms.tunables["glibc.malloc.trim_threshold"] == "4096"
    assert ms.arena_max == 3 and ms.other == {"MALLOC_TOP_PAD_": "0"}
    assert proc.malloc_settings({"MALLOC_ARENA_MAX": "1"}).arena_max == 1
    assert proc.malloc_settings({"MALLOC_ARENA_MAX": "bogus"}).arena_max is None
    assert proc.malloc_settings({}).arena_max is None
    # glibc 2.36 overwrites the ':' separators of GLIBC_TUNABLES with NULs in place
    split = proc.parse_environ(b"GLIBC_TUNABLES=glibc.malloc.arena_max=3\0glibc.malloc.tcache_count=0\0B=2\0")
    assert split == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=3:glibc.malloc.tcache_count=0", "B": "2"}
    assert proc.parse_cmdline(b"java\0-jar\0x y.jar\0") == ("java", "-jar", "x y.jar")
    assert proc.parse_cmdline(b"") == ()


# --------------------------------------------------------------------------- live processes

CHILD = "import sys, time; print('ready', flush=True); time.sleep(600)"


def _start_child(env=None) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", CHILD, "marker-arg"], stdout=subprocess.PIPE, env=env)
    assert p.stdout.readline() == b"ready\n"
    return p


def test_live_process_snapshot():
    env = dict(os.environ, MALLOC_ARENA_MAX="2",
               GLIBC_TUNABLES="glibc.malloc.arena_max=3:glibc.malloc.mmap_threshold=65536")
    p = _start_child(env)
    try:
        snap = proc.load_snapshot(p.pid)
        assert snap.pid == p.pid and snap.has_smaps
        assert snap.cmdline == (sys.executable, "-c", CHILD, "marker-arg")
        ms = snap.malloc
        assert ms.malloc_arena_max == "2" and ms.arena_max == 3
        assert ms.tunables["glibc.malloc.mmap_threshold"] == "65536"
        assert snap.status.pid == p.pid and snap.status.threads == 1
        assert snap.rollup is not None and snap.rollup.rss > 0
        # the interpreter binary is mapped, and so are [heap] and [stack]
        paths = {m.path for m in snap.mappings}
        assert "[stack]" in paths and any(os.path.basename(x).startswith("python") for x in paths)
        assert all(m.has_smaps and "Rss" in m.fields for m in snap.mappings)
        assert proc.read_maps(p.pid)[0].start == snap.mappings[0].start
        with proc.MemReader(p.pid) as rd:
            stack = next(m for m in snap.mappings if m.path == "[stack]")
            assert len(rd(stack.end - 16, 16)) == 16
            assert rd(0, 16) is None                  # unmapped: EIO becomes None
            assert rd(0xffffffffff600000, 8) is None  # vsyscall: above pread's offset range
    finally:
        end_process(p)


def test_dead_pid_is_no_such_process():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    with pytest.raises(NoSuchProcess) as info:
        proc.read_smaps(p.pid)
    assert info.value.pid == p.pid
    with pytest.raises(NoSuchProcess):
        proc.load_snapshot(str(p.pid))
    with pytest.raises(NoSuchProcess):
        proc.MemReader(p.pid)


def test_zombie_is_reported():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 20
        while proc.read_status(p.pid).state != "Z":
            assert time.monotonic() < deadline, "child never became a zombie"
            time.sleep(0.02)
        with pytest.raises(ZombieProcess):
            proc.read_smaps(p.pid)
        with pytest.raises(ZombieProcess):
            proc.load_snapshot(p.pid)
    finally:
        p.wait()


def test_not_a_pid():
    with pytest.raises(InputError):
        proc.read_proc_file(-3, "maps")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_access_denied_for_another_user():
    # A forked child drops to nobody and reads a root process's environ: EACCES.
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                proc.read_environ(1)
                msg = b"no error"
            except AccessDenied as exc:
                msg = ("AccessDenied:" + str(exc)).encode()
            except Exception as exc:  # noqa: BLE001 - report anything else to the parent
                msg = repr(exc).encode()
            os.write(w, msg)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    try:
        with os.fdopen(r, "rb") as f:
            msg = f.read().decode()
    finally:
        os.waitpid(pid, 0)
    assert msg.startswith("AccessDenied:"), msg
    assert "CAP_SYS_PTRACE" in msg and "ptrace_scope" in msg
