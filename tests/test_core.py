"""ELF core files as a source: a real core written by gdb's ``gcore`` from a process started here."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

import pytest

from offheap.core import CoreFile
from offheap.dump import dump_process
from offheap.errors import InputError, ParseError
from offheap.manifest import read_region

pytestmark = pytest.mark.single_impl

# No threads, so no 64 MiB arena reservation: the core stays a few MB.
PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
int main(void) {
    char *heap = malloc(64);
    snprintf(heap, 64, "CORE-MARKER-HEAP-%d", (int)getpid());
    char *map = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    strcpy(map + 3 * 4096 + 17, "CORE-MARKER-MMAP");
    printf("{\"heap\":%lu,\"map\":%lu,\"map_len\":%d}\n", (unsigned long)heap, (unsigned long)map, 1 << 20);
    fflush(stdout);
    for (;;) pause();
}
"""


@pytest.fixture(scope="module")
def core_of_process(tmp_path_factory):
    gcc, gcore = shutil.which("gcc"), shutil.which("gcore")
    if gcc is None or gcore is None:
        pytest.skip("needs gcc and gdb's gcore")
    d = tmp_path_factory.mktemp("core")
    (d / "marker.c").write_text(PROGRAM)
    exe = d / "marker"
    subprocess.run([gcc, "-O0", "-o", str(exe), str(d / "marker.c")], check=True, timeout=120)
    p = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        info = json.loads(p.stdout.readline())
        r = subprocess.run([gcore, "-o", str(d / "core"), str(p.pid)], capture_output=True, timeout=120)
        core = d / f"core.{p.pid}"
        if r.returncode != 0 or not core.is_file():
            pytest.skip(f"gcore could not write a core here: {r.stderr.decode(errors='replace')[-200:]}")
        # A live dump of the same region, to compare with the core's bytes.
        live = dump_process(p.pid, d / "live", ranges=[(info["map"], info["map"] + info["map_len"])])
        yield {"pid": p.pid, "core": core, "exe": exe, "live": live, **info}
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        p.stdout.close()


def test_segments_and_process_notes(core_of_process):
    c = core_of_process
    with CoreFile(c["core"]) as core:
        assert core.pid == c["pid"]
        assert core.command == "marker" and core.psargs.startswith(str(c["exe"]))
        assert core.segments and all(s.memsz > 0 for s in core.segments)
        starts = [s.start for s in core.segments]
        assert starts == sorted(starts)
        seg = core.segment_at(c["map"])
        assert seg.start <= c["map"] and c["map"] + c["map_len"] <= seg.end
        assert seg.perms.startswith("rw")


def test_bytes_at_virtual_addresses(core_of_process):
    c = core_of_process
    with CoreFile(c["core"]) as core:
        heap = core.read_at(c["heap"], 64)
        assert heap.split(b"\0")[0] == b"CORE-MARKER-HEAP-%d" % c["pid"]
        assert core.read_at(c["map"] + 3 * 4096 + 17, 16) == b"CORE-MARKER-MMAP"
        seg = core.segment_at(c["map"])
        assert bytes(core.view(seg)[c["map"] - seg.start + 3 * 4096 + 17:][:16]) == b"CORE-MARKER-MMAP"
        # The same bytes as a live dump of that region taken just before the core.
        (entry,) = c["live"].regions
        off = c["map"] - seg.start
        assert core.read(seg, off, c["map_len"]) == read_region(c["live"], entry)
        with pytest.raises(InputError):
            core.read_at(8, 1)                 # page 0 is never mapped


def test_core_as_manifest(core_of_process):
    c = core_of_process
    with CoreFile(c["core"]) as core:
        m = core.as_manifest()
        assert m.source == "core" and m.pid == c["pid"]
        entry = next(r for r in m.regions if r.start <= c["map"] < r.end)
        data = read_region(m, entry)
        assert len(data) == entry.size
        at = c["map"] - entry.start + 3 * 4096 + 17
        assert data[at:at + 16] == b"CORE-MARKER-MMAP"
        assert sum(r.present for r in m.regions) <= os.path.getsize(c["core"])


def test_bad_core_files(core_of_process, tmp_path):
    c = core_of_process
    text = tmp_path / "text"
    text.write_bytes(b"hello, not an ELF file at all" * 4)
    with pytest.raises(InputError, match="not an ELF"):
        CoreFile(text)
    with pytest.raises(InputError, match="not a core"):
        CoreFile(c["exe"])                     # an ELF executable
    truncated = tmp_path / "truncated"
    with open(c["core"], "rb") as f:
        truncated.write_bytes(f.read(4096))
    with pytest.raises(ParseError, match="truncated"):
        CoreFile(truncated)
    with pytest.raises(ParseError):
        (tmp_path / "tiny").write_bytes(b"\x7fELF")
        CoreFile(tmp_path / "tiny")
    with pytest.raises(InputError):
        CoreFile(tmp_path / "missing")
