"""The HTML report: built from real pieces, checked as markup and in a real browser.

The pieces are real: regions classified from the captured smaps of the 600 MB
Deflater JVM, its NMT summary, an ``Attribution`` computed by ``attribute()`` on a
generated buffer of JSON pushes (one carrying a ``<script>`` payload, as a dump
may), and a glibc heap walk of a synthetic arena heap from benchmarks/gen_dump.py.

The browser tests run Debian's ``chromium`` headless (``.ci/run`` installs it):
one screenshot, decoded here (zlib + numpy) and checked for ink and for the
report's colours; one ``--dump-dom`` checked for the payload type names and for
the absence of any script the payload could have smuggled in.
"""

from __future__ import annotations

import html
import importlib.util
import random
import shutil
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from offheap import nmt as N
from offheap import proc
from offheap import regions as R
from offheap.attribute import attribute
from offheap.heap import walk_heap
from offheap.records import RegionClass
from offheap.report.html import CLASS_COLOURS, render_html
from offheap.report.text import human
from offheap.signatures import PayloadType, Signatures
from shared_fixtures import fixture
from procs import end_group

# Rendering touches no kernel: run once.
pytestmark = pytest.mark.single_impl

_GEN = Path(__file__).resolve().parents[1] / "benchmarks" / "gen_dump.py"

EVIL = "<script>alert(1)</script>"
# Terminal escapes and C1 controls (latin-1 text from `strings -e S` can hold them) show as \xNN.
CONTROL = "esc\x1b[31mred c1\x85 end"
EVIL_PATH = "/tmp/<img src=https://evil.example/x.png onerror=alert(2)>.so"
TYPES = ("unread_count", "chat_message", "presence")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_TIMEOUT = 90


def _gen_dump():
    spec = importlib.util.spec_from_file_location("offheap_bench_gen_dump_html", _GEN)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _pushes(seed: int = 1, n: int = 2500) -> bytes:
    """JSON pushes of three types between NUL/pointer-ish filler, like a malloc arena."""
    rnd = random.Random(seed)
    buf = bytearray()
    for _ in range(n):
        k = rnd.random()
        if k < 0.5:
            buf += b'{"event":"unread_count","uid":%d,"count":%d}' % (rnd.randrange(10**6), rnd.randrange(9))
        elif k < 0.8:
            buf += (b'{"event":"chat_message","from":%d,"text":"' % rnd.randrange(10**5)
                    + EVIL.encode() + b'"}')
        elif k < 0.9:
            buf += b'{"event":"presence","uid":%d,"online":true}' % rnd.randrange(10**5)
        else:
            buf += bytes(rnd.randrange(256) for _ in range(48))
        buf += b"\x00" * rnd.randrange(8, 40)
    return bytes(buf)


@pytest.fixture(scope="module")
def pieces(tmp_path_factory):
    smaps = fixture("jvm_deflater600.smaps").read_bytes()
    evil_map = f"7ffff0000000-7ffff0001000 r--p 00000000 fe:00 4242 {EVIL_PATH}\n".encode()
    mappings = proc.parse_smaps(smaps) + proc.parse_maps(evil_map)
    regions = R.classify(mappings)
    report = N.read_nmt(fixture("nmt_summary_jdk17_deflater300.txt"))
    sigs = Signatures.from_types([PayloadType(t, [f'"event":"{t}"']) for t in TYPES])
    heaps = [r for r in regions if r.cls is RegionClass.ARENA_HEAP and r.mapping.readable]
    a1 = attribute(_pushes(), sigs, base_address=heaps[0].start, name="arena1.dump")
    # A second dumped region: a synthetic glibc arena heap, walked for live vs freed.
    path = tmp_path_factory.mktemp("heap") / "heap.bin"
    _gen_dump().generate(path, 1 << 20, seed=3)
    walk = walk_heap(path.read_bytes())
    heap_sigs = Signatures.from_types(
        [PayloadType(t, [f'"event":"{t}"']) for t in ("unread_count", "presence", "message_new")])
    a2 = attribute(path, heap_sigs, base_address=walk.base_address)
    dumped = [(heaps[0], a1, None), (heaps[1], a2, walk)]
    page = render_html(title=f"offheap: PID 4242 {EVIL}", summary_lines=["RSS 694 MB", EVIL, CONTROL],
                       regions=regions, nmt=report, dumped=dumped, generated_at="2024-05-01 12:00")
    return regions, report, dumped, page


class _Collect(HTMLParser):
    """Tags, attributes and text of a page, with a check that elements nest properly."""

    VOID = {"meta", "br", "hr", "img", "input", "link", "rect", "line", "path", "circle", "col", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: str) -> _Collect:
    p = _Collect()
    p.feed(page)
    p.close()
    return p


# --------------------------------------------------------------------------- markup


def test_page_parses_and_nests(pieces):
    _, _, _, page = pieces
    p = _parse(page)
    assert page.startswith("<!DOCTYPE html>")
    assert p.errors == []
    assert p.stack == []                      # every element closed
    names = [t for t, _ in p.tags]
    assert names.count("svg") >= 5            # map, waterfall, three composition bars (+ heap states)
    text = "".join(p.text)
    for section in ("Diagnosis", "RSS against NMT", "Address space", "What fills the dumped regions"):
        assert section in text


def test_no_external_resources(pieces):
    _, _, _, page = pieces
    p = _parse(page)
    for tag, attrs in p.tags:
        assert tag not in ("script", "link", "img", "iframe", "object", "embed", "base"), tag
        for k, v in attrs.items():
            if k in ("src", "href", "xlink:href", "action", "poster", "data", "srcset"):
                assert not (v or "").lower().lstrip().startswith(("http://", "https://", "//")), (tag, k, v)
            assert not k.startswith("on"), (tag, k)        # no event handlers at all
    low = page.lower()
    assert "url(" not in low and "@import" not in low
    assert " src=" not in low.replace("&lt;img src=", "") and " href=" not in low
    # The page forbids fetching anything, whatever a browser makes of it.
    assert any(t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
               and "default-src 'none'" in a.get("content", "") for t, a in p.tags)


def test_dump_and_proc_text_is_escaped(pieces):
    _, _, _, page = pieces
    assert EVIL not in page
    assert "<img" not in page
    assert html.escape(EVIL) in page                      # shown, as text
    assert html.escape(EVIL_PATH) in page                 # the mapping path, in the map's tooltip
    assert "\x1b" not in page and "\x85" not in page
    assert "esc\\x1b[31mred c1\\x85 end" in page
    p = _parse(page)
    text = "".join(p.text)
    assert EVIL in text                                   # a reader sees the payload as it was
    assert sum(1 for t, _ in p.tags if t == "script") == 0


def test_every_region_is_on_the_map(pieces):
    regions, _, dumped, page = pieces
    p = _parse(page)
    blocks = [a for t, a in p.tags if t == "g" and "rg" in a.get("class", "").split()]
    assert len(blocks) == len(regions)
    for cls in {r.cls.value for r in regions}:
        assert any(f"c-{cls}" in a["class"] for a in blocks)
    ordered = sorted(regions, key=lambda r: r.start)
    gaps = sum(1 for a, b in zip(ordered, ordered[1:]) if b.start > a.end)
    drawn_gaps = sum(1 for t, a in p.tags if t == "g" and a.get("class") == "gap")
    assert 0 < drawn_gaps <= gaps                          # a break at a row start is dropped
    r0 = dumped[0][0]
    assert f"0x{r0.start:x}-0x{r0.end:x} {r0.mapping.perms}" in page   # tooltip: start-end perms
    assert "dumped and analysed" in page


def test_waterfall_figures_match_nmt_compare(pieces):
    regions, report, _, page = pieces
    cmp = N.compare(report, regions)
    assert cmp.untracked > 0
    for figure in (cmp.process_rss, report.total_committed, cmp.untracked):
        assert f">{human(figure)}</text>" in page
    # Committed + untracked exceed RSS here (the Java heap is committed, not resident).
    over = report.total_committed + cmp.untracked - cmp.process_rss
    assert over > 0 and "overlap: committed not resident" in page and f">{human(over)}</text>" in page
    # peak=... far above current is the tell of freed-but-retained memory; deflater300's is not.
    assert ("malloc peak" in page) == (report.malloc_peak > 2 * report.malloc_total)


def test_types_templates_and_examples(pieces):
    _, _, dumped, page = pieces
    _, a1, _ = dumped[0]
    text = "".join(_parse(page).text)
    for t in TYPES:
        assert t in text
    chat = next(t for t in a1.types if t.name == "chat_message")
    assert chat.bytes > 0 and chat.templates
    top = chat.templates[0]
    assert f"{top.count:,}" in text and top.template in text
    assert f"0x{top.example_address:x}" in text
    assert f"0x{chat.example_addresses[0]:x}" in text
    assert f"{100 * chat.bytes / a1.size:.1f} %" in text


def test_heap_verdict_per_region(pieces):
    _, _, dumped, page = pieces
    walk = dumped[1][2]
    assert walk.verdict and walk.verdict.split(":")[0] in ("live", "retained")
    assert html.escape(walk.verdict) in page
    assert page.count("glibc heap walk:") == 1             # only the region that was walked


def test_without_nmt_and_with_nmt_off(pieces):
    regions, _, dumped, _ = pieces
    off = N.read_nmt(fixture("nmt_disabled_jdk17.txt"))
    assert not off.enabled
    for nmt, says in ((None, "No NMT report"), (off, "NMT was not enabled")):
        page = render_html(title="t", summary_lines=[], regions=regions, nmt=nmt, dumped=dumped[:1],
                           generated_at="now")
        assert says in page and _parse(page).errors == []


def test_empty_investigation_still_renders():
    page = render_html(title="nothing", summary_lines=[], regions=[], nmt=None, dumped=[],
                       generated_at="now")
    p = _parse(page)
    assert p.errors == [] and "No region was dumped" in "".join(p.text)


def test_investigate_writes_this_report(tmp_path):
    """``investigate`` on a real leaking process writes report.html through
    ``render_investigation``: the page shows the process's regions, its dumps, the
    leaked payload types and the heap verdicts."""
    investigate_mod = pytest.importorskip("offheap.investigate", reason="offheap.investigate not present")
    demo = pytest.importorskip("offheap.demo", reason="offheap.demo (the bundled workload) not present")
    from offheap.report.html import render_investigation

    out = tmp_path / "inv"
    with demo.start_workload(8, 2) as w:
        inv = investigate_mod.investigate(w.pid, out, signatures=demo.demo_signatures())
    report = out / "report.html"
    assert report.is_file(), inv.notes
    assert report.stat().st_mode & 0o777 == 0o600
    page = report.read_text(encoding="utf-8")
    assert page == render_investigation(inv)
    p = _parse(page)
    assert p.errors == [] and p.stack == []
    text = "".join(p.text)
    assert f"PID {w.pid}" in text
    for line in inv.summary_lines:
        assert line in text
    for t in demo.TYPES:
        assert t in text
    blocks = [a for t, a in p.tags if t == "g" and "rg" in a.get("class", "").split()]
    assert len(blocks) == len(inv.regions)
    walked = [d for d in inv.dumps if d.heap is not None]
    assert walked and text.count("glibc heap walk:") == len(walked)
    assert sum(1 for d in inv.dumps if d.verdict) == text.count("verdict:")


# --------------------------------------------------------------------------- real browser


def _decode_png(data: bytes) -> np.ndarray:
    """An 8-bit, non-interlaced PNG (what chromium writes) -> uint8 array (h, w, channels)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, hdr = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    w, h, depth, ctype, _, _, interlace = hdr
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
    if depth != 8 or bpp is None or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {ctype}, interlace {interlace}")
    stride = w * bpp
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(h, stride + 1)
    out = np.zeros((h, stride), np.uint8)
    prev = np.zeros(stride, np.uint8)
    for y in range(h):
        f, line = int(raw[y, 0]), raw[y, 1:]
        if f == 0:
            cur = line.copy()
        elif f == 1:      # Sub: a running sum per channel (uint8 wraps like the filter)
            cur = np.cumsum(line.reshape(w, bpp), axis=0, dtype=np.uint8).reshape(stride)
        elif f == 2:      # Up
            cur = line + prev
        elif f in (3, 4):  # Average, Paeth: each byte needs its reconstructed left neighbour
            c_ = bytearray(line.tobytes())
            p = prev.tobytes()
            for i in range(stride):
                a = c_[i - bpp] if i >= bpp else 0
                b = p[i]
                if f == 3:
                    c_[i] = (c_[i] + ((a + b) >> 1)) & 255
                    continue
                c = p[i - bpp] if i >= bpp else 0
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                c_[i] = (c_[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            cur = np.frombuffer(bytes(c_), np.uint8)
        else:
            raise ValueError(f"bad PNG filter {f}")
        out[y] = cur
        prev = cur
    return out.reshape(h, w, bpp)


def test_png_decoder_reads_every_filter():
    # Rows filtered None/Sub/Up/Average/Paeth by the PNG spec's own definitions.
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    bpp, rows, prev = 3, [], np.zeros(21, np.int64)
    for f, row in enumerate(img.reshape(5, 21).astype(np.int64)):
        left = np.concatenate([np.zeros(bpp, np.int64), row[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int64), prev[:-bpp]])
        pa, pb, pc = np.abs(prev - upleft), np.abs(left - upleft), np.abs(left + prev - 2 * upleft)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        pred = [0, left, prev, (left + prev) // 2, paeth][f]
        rows.append(bytes([f]) + ((row - pred) % 256).astype(np.uint8).tobytes())
        prev = row

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 7, 5, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))
    assert np.array_equal(_decode_png(png), img)


def _chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    """Run headless chromium in its own process group; on timeout end that group."""
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-extensions", "--disable-background-networking", "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={tmp / 'profile'}", *args]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                         cwd=tmp)
    try:
        out, err = p.communicate(timeout=BROWSER_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium did not finish within {BROWSER_TIMEOUT} s")
    finally:
        # chromium forks helpers (zygote, utility processes): end the group it leads, by its id.
        end_group(p)
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)")


@pytest.fixture(scope="module")
def page_file(pieces, tmp_path_factory):
    d = tmp_path_factory.mktemp("html")
    f = d / "report.html"
    f.write_text(pieces[3], encoding="utf-8")
    return f


def _hex(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


@needs_chromium
def test_browser_screenshot_is_not_blank(page_file, tmp_path):
    shot = tmp_path / "shot.png"
    r = _chromium([f"--screenshot={shot}", "--window-size=1400,2000", page_file.as_uri()], tmp_path)
    assert shot.exists(), f"no screenshot (exit {r.returncode}): {r.stderr.decode(errors='replace')[-500:]}"
    img = _decode_png(shot.read_bytes())[:, :, :3]
    assert img.shape[:2] == (2000, 1400)
    inked = (img.min(axis=2) < 235).mean()
    assert inked > 0.05, f"only {inked:.1%} of the page has ink"
    colours = np.unique(img.reshape(-1, 3), axis=0)
    assert len(colours) > 50
    # The SVGs were painted: the arena class colour and the top payload type's colour are on screen.
    flat = img.reshape(-1, 3).astype(np.int16)
    for rgb in (_hex(CLASS_COLOURS["arena"]), _hex("#4e79a7")):
        near = (np.abs(flat - np.array(rgb, np.int16)).max(axis=1) <= 6).sum()
        assert near > 500, f"colour {rgb} barely on screen ({near} px)"


@needs_chromium
def test_browser_dom_names_payload_types(page_file, pieces, tmp_path):
    r = _chromium(["--dump-dom", page_file.as_uri()], tmp_path)
    dom = r.stdout.decode("utf-8", errors="replace")
    assert "</html>" in dom, f"no DOM (exit {r.returncode}): {r.stderr.decode(errors='replace')[-500:]}"
    p = _parse(dom)
    text = "".join(p.text)
    for name in TYPES + ("message_new", "other text", "binary", "zero"):
        assert name in text, name
    assert EVIL in text                                   # the payload is text in the page ...
    assert not any(t == "script" for t, _ in p.tags)      # ... and never became an element
    assert not any(k.startswith("on") for _, a in p.tags for k in a)
