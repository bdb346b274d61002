"""Multi-pattern matching: offheap against pyahocorasick, ripgrep, GNU grep and
python-hyperscan, in one run on the same arena-like dump.

    python benchmarks/bench_match.py [--cache DIR] [--size 64M] [--repeat N] [--slice 4M]

With 10 patterns (all present in the dump) and with 1,000 (the same 10 plus 990
identifier-like words that are absent), it times, best of N on the hot dump:

- ``PatternSet(patterns).find_all(path)`` in-process (all overlapping matches,
  sorted (offset, id) numpy arrays; automaton build timed separately);
- pyahocorasick ``Automaton.iter()`` on the first ``--slice`` bytes decoded as
  latin-1 (its PyPI build takes only ``str``), scaled to the dump size; on that slice
  offheap's matches must equal pyahocorasick's or the script exits 1;
- ``rg -a -o -F -f PATS FILE > out`` and ``LC_ALL=C grep -a -o -F -f PATS FILE > out``
  (output to a file: grep stops at the first match when stdout is /dev/null; both
  report leftmost non-overlapping matches, so their counts are lower);
- python-hyperscan block mode, literal patterns, one Python callback per match,
  if the module imports.

Prints GB/s (10^9 bytes/s) and the ratio of each tool's time to offheap's.
Absolute figures swing +-30 % on a shared machine: read the ratios.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import offheap  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(HERE.parent / "src"))

import ahocorasick  # noqa: E402

import gen_dump  # noqa: E402
from offheap import _impl  # noqa: E402
from offheap.matching import PatternSet  # noqa: E402

PRESENT = [
    b'"event":"unread_count"', b'"uid":', b'"presence"', b"message_new", b'"typing"',
    b"read_receipt", b'"count":', b'"ts":', b"java/lang/", b'{"',
]


def absent_words(n: int, seed: int = 7) -> list[bytes]:
    """Identifier-like words unlikely to occur in the dump (checked by the caller)."""
    rng = random.Random(seed)
    chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:/-"
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(chars) for _ in range(rng.randrange(8, 25))).encode())
    return sorted(words)


def ensure_dump(cache: Path, size: int, seed: int) -> Path:
    label = f"{size >> 20}M"
    path = cache / f"arena-{label}-seed{seed}-v{gen_dump.GEN_VERSION}.bin"
    if not (path.exists() and path.stat().st_size == size):
        cache.mkdir(mode=0o700, parents=True, exist_ok=True)
        gen_dump.generate(path, size, seed)
        os.chmod(path, 0o600)
    return path


def default_dump() -> Path:
    """The hot 64 MiB arena-like dump the kernel benchmarks share (made when missing)."""
    return ensure_dump(Path("/tmp/offheap-bench"), 64 << 20, 0)


def add_dump_options(ap, repeat: int) -> None:
    """--dump and --repeat, as the single-kernel benchmarks take them."""
    ap.add_argument("--dump", type=Path, default=None, help="default: the shared 64 MiB arena-like dump")
    ap.add_argument("--repeat", type=int, default=repeat)


def read_dump(args) -> bytes:
    """The bytes of --dump (the shared dump when not given; ``args.dump`` is set to it)."""
    args.dump = args.dump or default_dump()
    return args.dump.read_bytes()


def best_of(repeat: int, fn):
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def run_tool(argv: list[str], out: Path, repeat: int, env=None) -> tuple[float, int]:
    def once():
        with open(out, "wb") as f:
            r = subprocess.run(argv, stdout=f, stderr=subprocess.PIPE, env=env)
        if r.returncode not in (0, 1):  # 1 = no match
            raise SystemExit(f"{argv[0]} exited {r.returncode}: {r.stderr.decode(errors='replace')}")
        return r
    seconds, _ = best_of(repeat, once)
    with open(out, "rb") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    return seconds, lines


def pyahocorasick_count(patterns: list[bytes], text: str) -> tuple[float, list[tuple[int, int]]]:
    auto = ahocorasick.Automaton()
    for pid, p in enumerate(patterns):
        auto.add_word(p.decode("latin-1"), (pid, len(p)))
    auto.make_automaton()
    t0 = time.perf_counter()
    found = [(end - n + 1, pid) for end, (pid, n) in auto.iter(text)]
    return time.perf_counter() - t0, sorted(found)


def hyperscan_run(patterns: list[bytes], data: bytes, repeat: int) -> tuple[float, int] | None:
    try:
        import hyperscan
    except ImportError:
        return None
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=list(patterns), ids=list(range(len(patterns))),
               elements=len(patterns), flags=[0] * len(patterns), literal=True)
    count = [0]

    def on_match(pid, start, end, flags, context):
        count[0] += 1

    def once():
        count[0] = 0
        db.scan(data, match_event_handler=on_match)
        return count[0]
    return best_of(repeat, once)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/offheap-bench"))
    ap.add_argument("--size", type=gen_dump.parse_size, default=64 << 20)
    ap.add_argument("--slice", type=gen_dump.parse_size, default=4 << 20,
                    help="bytes given to pyahocorasick (it is slow), result scaled")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    path = ensure_dump(args.cache, args.size, args.seed)
    data = path.read_bytes()  # also warms the page cache for the external tools
    size = len(data)
    print(f"dump {path} ({size >> 20} MiB), kernels: {_impl.implementation()}, "
          f"repeat {args.repeat}, pyahocorasick slice {args.slice >> 20} MiB")
    words = [w for w in absent_words(990) if w not in data]
    sets = {"10": PRESENT, "1000": PRESENT + words[:990]}
    rg, grep = shutil.which("rg"), shutil.which("grep")
    c_env = dict(os.environ, LC_ALL="C")
    failed = False
    rows = []
    with tempfile.TemporaryDirectory(prefix="offheap-bench-match-") as tmp:
        tmpd = Path(tmp)
        for label, pats in sets.items():
            t0 = time.perf_counter()
            ps = PatternSet(pats)
            build = time.perf_counter() - t0
            secs, m = best_of(args.repeat, lambda: ps.find_all(path))
            rows.append((label, "offheap find_all", secs, m.count, f"build {build * 1e3:.0f} ms"))
            base = secs

            sl = data[:args.slice]
            t_py, ref = pyahocorasick_count(pats, sl.decode("latin-1"))
            mine = ps.find_all(sl)
            if list(zip(mine.offsets.tolist(), mine.pattern_ids.tolist())) != ref:
                print(f"MISMATCH with pyahocorasick on {label} patterns", file=sys.stderr)
                failed = True
            rows.append((label, "pyahocorasick iter()", t_py * size / len(sl), len(ref) * size // len(sl),
                         "scaled from slice"))

            pat_file = tmpd / f"pats{label}.txt"
            pat_file.write_bytes(b"\n".join(pats) + b"\n")
            if rg:
                s, n = run_tool([rg, "--no-config", "-a", "-o", "-F", "-f", str(pat_file), str(path)],
                                tmpd / "rg.out", args.repeat)
                rows.append((label, "rg -a -o -F -f", s, n, "non-overlapping"))
            if grep:
                s, n = run_tool([grep, "-a", "-o", "-F", "-f", str(pat_file), str(path)],
                                tmpd / "grep.out", args.repeat, env=c_env)
                rows.append((label, "grep -a -o -F -f (LC_ALL=C)", s, n, "non-overlapping"))
            hs = hyperscan_run(pats, data, args.repeat)
            if hs is not None:
                rows.append((label, "python-hyperscan", hs[0], hs[1], "callback per match"))
            else:
                rows.append((label, "python-hyperscan", float("nan"), 0, "not installed"))
            rows.append((label, None, base, 0, ""))

    print(f"\n{'patterns':>8}  {'tool':<30} {'seconds':>8} {'GB/s':>7} {'matches':>11}  "
          f"{'x offheap time':>14}  note")
    base = None
    for label, tool, secs, count, note in rows:
        if tool is None:
            print()
            continue
        if tool.startswith("offheap"):
            base = secs
        ratio = secs / base if base else float("nan")
        print(f"{label:>8}  {tool:<30} {secs:8.3f} {size / secs / 1e9:7.2f} {count:11d}  "
              f"{ratio:14.2f}  {note}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
