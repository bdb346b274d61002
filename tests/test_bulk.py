"""scan_many over many generated dumps, one of them corrupt; and `offheap scan`."""

from __future__ import annotations

import csv
import io
import json

import pytest

from offheap.bulk import scan_many
from offheap.signatures import PayloadType, Signatures
from clirun import run_cli

SIGS = Signatures((PayloadType("unread", ['"unread_count"']), PayloadType("typing", ['"typing"'])))


def _dump(i: int) -> bytes:
    unread = b'{"event":"unread_count","uid":%d,"count":1}\x00' % i
    typing = b'{"event":"typing","conv":"c-%d"}\x00\x01' % i
    return (unread * (10 + i) + typing * 5 + b"\x00" * 100 + bytes(range(256))) * 20


@pytest.fixture()
def dumps(tmp_path):
    folder = tmp_path / "dumps"
    folder.mkdir()
    paths = []
    for i in range(12):
        p = folder / f"dump-{i:02d}.bin"
        p.write_bytes(_dump(i))
        paths.append(p)
    bad = folder / "dump-05.bin"
    bad.write_bytes(b"")            # truncated to nothing
    unreadable = folder / "dump-07.bin"
    unreadable.unlink()
    unreadable.mkdir()              # not a file at all
    return folder, paths


def test_scan_many_isolates_failures_and_keeps_order(dumps):
    _, paths = dumps
    r1 = scan_many(paths, SIGS, workers=1, progress=False)
    r2 = scan_many(paths, SIGS, workers=3, progress=False)
    assert [d.spec.path for d in r2.dumps] == [str(p) for p in paths]
    assert [d.ok for d in r2.dumps] == [i not in (5, 7) for i in range(12)]
    assert "empty" in r2.dumps[5].error and "directory" in r2.dumps[7].error.lower()
    for a, b in zip(r1.dumps, r2.dumps):
        assert (a.attribution.class_bytes if a.ok else a.error) == (b.attribution.class_bytes if b.ok else b.error)
    assert r2.totals["unread"] == sum(len(b'{"event":"unread_count","uid":%d,"count":1}' % i) * (10 + i) * 20
                                      for i in range(12) if i not in (5, 7))
    assert r2.type_dumps == {"unread": 10, "typing": 10}
    assert sum(r2.totals.values()) == r2.scanned_bytes


def test_manifest_directory_gives_addresses_and_catches_truncation(tmp_path):
    from offheap.manifest import Manifest, RegionEntry, save_manifest

    d = tmp_path / "dumpdir"
    d.mkdir(mode=0o700)
    data = _dump(1)
    (d / "r0.bin").write_bytes(data)
    (d / "r1.bin").write_bytes(data[:1000])
    regions = (RegionEntry(start=0x7F0000000000, end=0x7F0000000000 + len(data), perms="rw-p",
                           cls="arena-heap", file="r0.bin", present=len(data)),
               RegionEntry(start=0x7F1000000000, end=0x7F1000000000 + len(data), perms="rw-p",
                           cls="arena-heap", file="r1.bin", present=len(data)))
    save_manifest(Manifest(pid=1, cmdline=("x",), created="2026-01-01T00:00:00Z", method="mem",
                           regions=regions), d)
    r = scan_many([d], SIGS, progress=False)
    assert r.dumps[0].ok and r.dumps[0].spec.base_address == 0x7F0000000000
    unread = next(t for t in r.dumps[0].attribution.types if t.name == "unread")
    assert unread.example_addresses[0] == 0x7F0000000000
    assert not r.dumps[1].ok and "truncated" in r.dumps[1].error


def test_cli_scan_table_json_csv(dumps, tmp_path):
    folder, _ = dumps
    sig = tmp_path / "sigs.toml"
    sig.write_text('mode = "replace"\n[[type]]\nname = "unread"\npatterns = [\'"unread_count"\']\n')
    out_json = tmp_path / "r.json"
    out_csv = tmp_path / "r.csv"
    res = run_cli("scan", str(folder), "--signatures", str(sig), "--json", str(out_json),
                  "--csv", str(out_csv), "--workers", "2")
    assert res.returncode == 1          # the empty dump failed, was reported, the rest scanned
    assert b"10 of 11 dumps scanned" in res.stdout   # a directory expands to its files
    assert res.stderr.count(b"\n") == 1 and b"dump-05.bin: empty" in res.stderr
    doc = json.loads(out_json.read_text())
    assert doc["schema"] == "offheap-scan/2"
    assert [d["ok"] for d in doc["dumps"]].count(False) == 1
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert {r["class"] for r in rows if r["class"]} == {"unread", "other text", "zero", "binary"}
    again = run_cli("scan", str(folder), "--signatures", str(sig), "--json", str(out_json))
    assert again.returncode == 1 and b"without --force" in again.stderr


def test_cli_scan_bad_signature_file_is_one_line(tmp_path, dumps):
    folder, _ = dumps
    sig = tmp_path / "bad.toml"
    sig.write_text('[[type]]\nname = "x"\npatterns = [""]\n')
    res = run_cli("scan", str(folder), "--signatures", str(sig))
    assert res.returncode != 0
    assert res.stderr.decode().count("\n") == 1 and "bad.toml:3" in res.stderr.decode()


def test_cli_templates_writes_signatures(tmp_path, dumps):
    folder, paths = dumps
    out = tmp_path / "discovered.toml"
    res = run_cli("templates", str(paths[0]), str(paths[1]), "--write-signatures", str(out))
    assert res.returncode == 0, res.stderr
    assert b'{"event":"unread_count","uid":#,"count":#}' in res.stdout
    scan = run_cli("scan", str(paths[0]), "--signatures", str(out))
    assert scan.returncode == 0 and b"unread_count" in scan.stdout


def _children(pid: int) -> list[int]:
    import os
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
        except FileNotFoundError:
            pass
    return out


@pytest.mark.single_impl
def test_a_worker_killed_mid_run_fails_only_the_dumps_it_held(dumps):
    # workers are forked by the forkserver, a child of this process: kill them all at
    # the first result; whenever that lands (starting, idle or busy), this process
    # scans what is left and only dumps a worker held can fail with it
    import os
    import signal
    import time

    _, paths = dumps
    killed = []

    def kill_workers(result):
        if killed:
            return
        for server in _children(os.getpid()):
            for worker in _children(server):
                os.kill(worker, signal.SIGKILL)
                killed.append(worker)
        time.sleep(0.3)

    r = scan_many(paths, SIGS, workers=2, progress=kill_workers)
    assert killed, "no worker was running"
    assert [d.spec.path for d in r.dumps] == [str(p) for p in paths]
    worker_failed = {d.spec.path for d in r.dumps if d.error and "worker failed" in d.error}
    assert len(worker_failed) <= 2
    own = {str(paths[5]), str(paths[7])}          # empty, and a directory
    assert {d.spec.path for d in r.failures} - worker_failed == own - worker_failed
    assert sum(d.ok for d in r.dumps) == len(paths) - len(own | worker_failed)


@pytest.mark.single_impl
@pytest.mark.parametrize("user_value", [None, "3"])
def test_workers_start_with_one_blas_thread_unless_the_user_chose(dumps, tmp_path, user_value):
    # numpy's OpenBLAS threads spin after import, taking CPU from this process's own
    # scanning; the forkserver (fresh here: a new interpreter) passes the setting on,
    # and has the kernels loaded already (preloaded: workers then start in ~20 ms)
    import os
    import subprocess
    import sys

    _, paths = dumps
    good = [str(p) for i, p in enumerate(paths) if i not in (5, 7)]
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if user_value:
        env["OPENBLAS_NUM_THREADS"] = user_value
    probe = tmp_path / "probe.py"
    probe.write_text("""
import os, sys
import multiprocessing.forkserver as fs
from offheap.bulk import scan_many
if __name__ == "__main__":
    r = scan_many(sys.argv[1:], None, workers=2, progress=False)
    assert all(d.ok for d in r.dumps), r.failures
    pid = fs._forkserver._forkserver_pid
    with open(f"/proc/{pid}/environ", "rb") as f:
        server = dict(v.split(b"=", 1) for v in f.read().split(b"\\0") if b"=" in v)
    with open(f"/proc/{pid}/maps") as f:
        kernels_loaded = "_scan.cpython" in f.read()
    print(server.get(b"OPENBLAS_NUM_THREADS"), os.environ.get("OPENBLAS_NUM_THREADS"), kernels_loaded)
""")
    out = subprocess.run([sys.executable, str(probe), *good], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    if user_value:
        assert out.stdout.split() == [repr(user_value.encode()), user_value, "True"]
    else:
        assert out.stdout.split() == ["b'1'", "None", "True"]      # this process's own is unchanged


@pytest.mark.single_impl
def test_scan_many_from_another_thread(dumps):
    # signal handlers are the main thread's: from another, the workers start without
    # them, and the run completes the same
    import threading

    _, paths = dumps
    out = {}
    t = threading.Thread(target=lambda: out.update(r=scan_many(paths, SIGS, workers=2, progress=False)))
    t.start()
    t.join(120)
    assert not t.is_alive()
    r = out["r"]
    assert [d.ok for d in r.dumps] == [i not in (5, 7) for i in range(12)]
    assert r.type_dumps == {"unread": 10, "typing": 10}
