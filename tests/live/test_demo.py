"""``offheap demo`` end to end, as a user runs it: a separate process that starts the
bundled workload, investigates it, prints both sides' figures and ends the workload."""

from __future__ import annotations

import json
import re

import pytest

from offheap.demo.workload import TYPES
from tests.clirun import run_cli

pytestmark = pytest.mark.single_impl


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except FileNotFoundError:
        return False


def test_demo_shows_the_leaked_types_and_ends_the_workload(tmp_path):
    out = tmp_path / "demo"
    res = run_cli("demo", "-o", str(out), "--size", "16", "--threads", "2", timeout=120)
    text = res.stdout.decode()
    assert res.returncode == 0, (text, res.stderr.decode())
    assert "offheap found the leaked types in the right proportions" in text
    # One row per type: the workload's bytes and share beside offheap's, all "ok".
    table = text[text.index("demo type"):].splitlines()
    for t in TYPES:
        row = next(line for line in table if line.startswith(t + " "))
        shares = [float(x) for x in re.findall(r"(\d+\.\d) %", row)]
        assert abs(shares[0] - shares[1]) <= 0.1 * shares[0], row
        assert row.rstrip().endswith("ok"), row
    assert "glibc arenas hold" in text and "overall: live allocations" in text
    report = json.loads((out / "report.json").read_text())
    assert [t["name"] for t in report["types"][:3]] == list(TYPES)
    assert (out / "report.html").is_file()
    assert not _alive(report["target"]["pid"]), "the demo must end its workload"


def test_demo_refuses_a_used_directory(tmp_path):
    out = tmp_path / "used"
    out.mkdir()
    (out / "report.json").write_text("{}")
    res = run_cli("demo", "-o", str(out), "--size", "1", timeout=60)
    err = res.stderr.decode()
    assert res.returncode == 1 and err.startswith("offheap demo: ") and err.count("\n") == 1, err
    assert "--force" in err
