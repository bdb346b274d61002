"""offheap dump --suspects, then offheap scan: payloads per type and a heap verdict per
glibc heap, on a real leaking C process (built at test time, ended by PID)."""

from __future__ import annotations

import json

import pytest

from clirun import run_cli

pytestmark = pytest.mark.single_impl


@pytest.mark.parametrize("free_half", [False, True], ids=["leak", "free-half"])
def test_dump_then_scan_gives_types_and_verdicts(start_leaky, tmp_path, free_half):
    args = ["-t", "2", "-k", "8192"] + (["-f"] if free_half else [])
    sig = tmp_path / "push.toml"
    sig.write_text('mode = "replace"\n[[type]]\nname = "push"\npatterns = [\'"type":"push"\', \'"title":"New message"\']\n')
    with start_leaky(*args) as target:
        dumped = run_cli("dump", str(target.pid), "--suspects", "-o", str(tmp_path / "d"))
        assert dumped.returncode == 0, dumped.stderr
    out = tmp_path / "scan.json"
    res = run_cli("scan", str(tmp_path / "d"), "--signatures", str(sig), "--json", str(out))
    assert res.returncode == 0, res.stderr
    doc = json.loads(out.read_text())
    arenas = [d for d in doc["dumps"] if d["region"].startswith("arena")]
    assert len(arenas) >= 2
    for d in arenas:
        a = d["attribution"]
        assert sum(a["class_bytes"].values()) == a["size"]
        assert d["heap"] is not None, d["heap_error"]
        live, free = d["heap"]["types"]["push"]["live"], d["heap"]["types"]["push"]["free"]
        if free_half:
            # half the payloads freed: both kinds are there in comparable amounts
            assert live > 0 and free > 0 and 0.3 < live / (live + free) < 0.7
        else:
            assert d["heap"]["verdict"].startswith("live") and live > 20 * free
            assert "mostly push" in d["heap"]["verdict"]
            assert a["class_bytes"]["push"] > 0.5 * sum(v for k, v in a["class_bytes"].items() if k != "zero")
    assert b"glibc heaps: live" in res.stdout


def test_heap_command_walks_every_heap_of_a_dump_directory(start_leaky, tmp_path):
    with start_leaky("-t", "2", "-k", "4096", "-f") as target:
        dumped = run_cli("dump", str(target.pid), "--suspects", "-o", str(tmp_path / "d"))
        assert dumped.returncode == 0, dumped.stderr
    res = run_cli("heap", str(tmp_path / "d"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.count(b"non-main arena heap") >= 2
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    arena = next(r for r in manifest["regions"] if r.get("class") == "arena" and r.get("file"))
    one = run_cli("heap", str(tmp_path / "d" / arena["file"]))
    assert one.returncode == 0 and f"base {int(str(arena['start']), 0):#x}".encode() in one.stdout
    empty = tmp_path / "none"
    empty.mkdir()
    bad = run_cli("heap", str(empty))
    assert bad.returncode != 0 and bad.stderr.count(b"\n") == 1
