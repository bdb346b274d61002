"""The benchmark dump generator: deterministic, exact sizes, honest per-kind totals,
and a chunk layout a glibc heap walker would accept."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import struct
import sys
from pathlib import Path

import pytest

# Pure numpy, no kernels: run once.
pytestmark = pytest.mark.single_impl

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "gen_dump.py"
_spec = importlib.util.spec_from_file_location("offheap_bench_gen_dump", _PATH)
gen_dump = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = gen_dump
_spec.loader.exec_module(gen_dump)

MiB = 1 << 20
# A JSON payload, whole or as a freed fragment, is a printable run between NULs
# (chunk size fields and fd/bk pointers end in zero bytes; strings end in a NUL).
JSON_RUN = re.compile(rb"(?<=\x00)[\x20-\x7e]{20,}\}(?=\x00)")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "a.bin"
    return path, gen_dump.generate(path, MiB, seed=0)


def test_same_seed_same_bytes_other_seed_other_bytes(small, tmp_path):
    path, _ = small
    again = tmp_path / "again.bin"
    gen_dump.generate(again, MiB, seed=0)
    assert _sha(again) == _sha(path)
    gen_dump.generate(again, MiB, seed=1)
    assert _sha(again) != _sha(path)


@pytest.mark.parametrize("size", [64 * 1024, MiB + 3 * 4096, 5 * MiB])
def test_size_is_exact_and_totals_add_up(tmp_path, size):
    path = tmp_path / "d.bin"
    totals = gen_dump.generate(path, size, seed=7)
    assert path.stat().st_size == size
    assert sum(t.bytes for t in totals.values()) == size


def test_payload_bytes_match_what_is_in_the_file(small):
    path, totals = small
    data = path.read_bytes()
    # Each event's whole messages start with its tag; freed ones lost 16 bytes,
    # which leaves a fragment starting with a known piece of the tag.
    heads = {}
    for event in gen_dump.EVENTS:
        tag = b'{"event":"%s"' % event.encode()
        heads[tag] = (event, True)
        heads[(tag + b',"')[16:]] = (event, False)
    found = {e: [0, 0, 0] for e in gen_dump.EVENTS}   # live, freed, bytes
    for m in JSON_RUN.finditer(data):
        run = m.group()
        hits = [v for k, v in heads.items() if run.startswith(k)]
        assert len(hits) == 1, run
        hit = hits[0]
        event, live = hit
        found[event][0 if live else 1] += 1
        found[event][2] += len(run)
    json_bytes = 0
    for event, (live, freed, nbytes) in found.items():
        t = totals[f"json:{event}"]
        assert (live, freed, nbytes) == (t.count - t.freed, t.freed, t.bytes), event
        assert t.count > 0
        json_bytes += nbytes
    assert 0.40 < json_bytes / len(data) < 0.60
    for kind in ("utf16le", "pointers", "binary", "zero", "free_links", "chunk_header"):
        assert totals[kind].bytes > 0, kind


def test_utf16_strings_are_there(small):
    path, totals = small
    data = path.read_bytes()
    assert data.count("java".encode("utf-16-le")) + data.count("https://".encode("utf-16-le")) > 10
    assert totals["utf16le"].count > 10


def _walk(data: bytes, heap_off: int, first_chunk: int, length: int) -> list[tuple[int, int]]:
    """(offset, size) of every chunk from the first to the heap end, checking links."""
    chunks = []
    pos = heap_off + first_chunk
    end = heap_off + length
    prev_size = None
    while pos < end:
        prev_field, size_field = struct.unpack_from("<QQ", data, pos)
        size = size_field & ~0x7
        if size == 0:           # last fencepost: the header that ends a heap
            chunks.append((pos, 16))
            pos += 16
            break
        assert size % 16 == 0, hex(pos)
        if not size_field & 1:  # previous chunk is free in a bin: prev_size says its size
            assert prev_field == prev_size, hex(pos)
        chunks.append((pos, size))
        prev_size = size
        pos += size
    assert pos == end
    return chunks


def test_chunks_chain_through_the_heap(small):
    path, totals = small
    data = path.read_bytes()
    ar_ptr, prev, size, mprotect_size, pagesize = struct.unpack_from("<5Q", data, 0)
    assert prev == 0 and size == mprotect_size == MiB and pagesize == 4096
    assert (ar_ptr - 0x30) % (64 * MiB) == 0
    chunks = _walk(data, 0, gen_dump.FIRST_CHUNK_FIRST_HEAP, MiB)
    assert sum(s for _, s in chunks) == MiB - gen_dump.FIRST_CHUNK_FIRST_HEAP
    assert len(chunks) == totals["chunk_header"].count


def test_second_heap_chains_to_the_first(tmp_path):
    path = tmp_path / "two.bin"
    size = 64 * MiB + 256 * 1024
    totals = gen_dump.generate(path, size, seed=3)
    data = path.read_bytes()
    first = struct.unpack_from("<5Q", data, 0)
    second = struct.unpack_from("<5Q", data, 64 * MiB)
    base1 = first[0] - 0x30
    assert second[0] == first[0] and second[1] == base1      # same arena, prev = first heap
    assert second[2] == 256 * 1024
    c1 = _walk(data, 0, gen_dump.FIRST_CHUNK_FIRST_HEAP, 64 * MiB)
    # sysmalloc's ending: freed old top, fencepost (16), zero-size header.
    assert [s for _, s in c1[-2:]] == [16, 16]
    c2 = _walk(data, 64 * MiB, gen_dump.FIRST_CHUNK_NEXT_HEAP, 256 * 1024)
    assert len(c1) + len(c2) == totals["chunk_header"].count


def test_bad_size_and_existing_file(tmp_path, capsys):
    with pytest.raises(ValueError):
        gen_dump.generate(tmp_path / "x.bin", 1000)
    target = tmp_path / "y.bin"
    target.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        gen_dump.generate(target, 64 * 1024, force=False)
    assert target.read_bytes() == b"keep"
    assert gen_dump.main([str(target), "--size", "64Q"]) == 1
    assert gen_dump.main([str(target), "--size", "64K"]) == 1     # exists, no --force
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "--force" in err
    assert gen_dump.parse_size("4G") == 4 << 30
