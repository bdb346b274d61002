"""Strings extraction: offheap against GNU strings, in one run on the same files.

    python benchmarks/bench_strings.py [--cache DIR] [--big] [--repeat N]

Measures, on generated arena-like dumps (see gen_dump.py; 64 MiB and 1 GiB,
plus 4 GiB with --big, cached in DIR, default /tmp/offheap-bench):

- ``offheap.strings(..., min_len=10)`` in-process on the hot 64 MiB dump, best
  of N, from the path (page cache) and from a bytes object already in memory;
- ``python -m offheap strings -a -n 10 -t x FILE > out`` end to end, and GNU
  ``strings -a -n 10 -t x FILE > out``, on every size: wall time, peak RSS
  (wait4 rusage of that very command, via GNU time) and sha256 of the output;
- the same for ``-e l`` (UTF-16LE) on the 64 MiB dump.

It prints a table, then the ratios against GNU strings measured in this run
(absolute figures swing +-30 % on a shared machine; ratios are what to read).
Exit status 1 if any offheap output differs from GNU strings', else 0.
Throughput is in decimal units (1 MB/s = 10^6 bytes/s).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import gen_dump  # noqa: E402

try:
    import offheap  # noqa: E402
except ImportError:   # running from a checkout without `pip install`
    sys.path.insert(0, str(REPO / "src"))
    import offheap  # noqa: E402

from offheap import _impl  # noqa: E402

MIN_LEN = 10
SIZES = {"64M": 64 << 20, "1G": 1 << 30, "4G": 4 << 30}


class Run(NamedTuple):
    """One measured child process."""

    seconds: float
    max_rss_kib: int
    returncode: int
    stderr: str
    sha256: str
    out_bytes: int
    lines: int


class Row(NamedTuple):
    dump: str
    tool: str
    seconds: float
    nbytes: int
    max_rss_kib: int | None
    found: int | None        # strings found (in-process) or output lines (CLI)
    sha256: str
    same: str                # "yes"/"NO"/"" compared with GNU strings on the same dump


def child_env() -> dict[str, str]:
    """Environment for `python -m offheap`: the same package this process imported."""
    env = dict(os.environ)
    src = str(Path(offheap.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def digest(path: Path) -> tuple[str, int, int]:
    """sha256, size and newline count of a file, read 4 MiB at a time."""
    h = hashlib.sha256()
    size = lines = 0
    with open(path, "rb", buffering=0) as f:
        while block := f.read(4 << 20):
            h.update(block)
            size += len(block)
            lines += block.count(b"\n")
    return h.hexdigest(), size, lines


# Peak RSS must come from a small launcher: Linux keeps ru_maxrss across exec, so a child
# forked (or vforked) straight from this process would report *our* RSS as its own.
# GNU time (fork + wait4) is ~2 MiB; the Python fallback puts the floor near 10 MiB.
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
_LAUNCHER = (
    "import os, sys\n"
    "pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write('%d\\n' % usage.ru_maxrss)\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_measured(argv: list[str], out_path: Path, env: dict[str, str] | None = None) -> Run:
    """Run ``argv > out_path``; wall time and the peak RSS of exactly that command."""
    with open(out_path, "wb") as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        if GNU_TIME:
            full = [GNU_TIME, "-f", "%M", "-o", rss.name, "--", *argv]
        else:
            full = [sys.executable, "-c", _LAUNCHER, rss.name, *argv]
        t0 = time.perf_counter()
        # Own session: an interrupted run is ended as one process group, launcher and child.
        proc = subprocess.Popen(full, stdout=out, stderr=err, env=env, start_new_session=True)
        try:
            proc.wait()
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        seconds = time.perf_counter() - t0
        err.seek(0)
        message = err.read().decode(errors="replace").strip()
        # GNU time writes "Command exited with non-zero status N" before the figure.
        lines = [ln for ln in rss.read().splitlines() if ln.strip()]
        max_rss = int(lines[-1]) if lines and lines[-1].strip().isdigit() else -1
    sha, size, nlines = digest(out_path)
    return Run(seconds, max_rss, proc.returncode, message, sha, size, nlines)


def best_pair(gnu_argv: list[str], cli_argv: list[str], out_path: Path, repeat: int,
              env: dict[str, str]) -> tuple[Run, Run]:
    """Best of ``repeat`` for each command, run alternately so load changes hit both."""
    runs: tuple[list[Run], list[Run]] = ([], [])
    for _ in range(repeat):
        for argv, e, dest in ((gnu_argv, None, runs[0]), (cli_argv, env, runs[1])):
            r = run_measured(argv, out_path, e)
            if r.returncode != 0:
                raise SystemExit(f"bench_strings: {' '.join(argv)} exited {r.returncode}: {r.stderr}")
            dest.append(r)

    def best(rs: list[Run]) -> Run:
        if len({r.sha256 for r in rs}) != 1:
            raise SystemExit("bench_strings: repeated runs of one command gave different outputs")
        return min(rs, key=lambda r: r.seconds)._replace(max_rss_kib=max(r.max_rss_kib for r in rs))

    return best(runs[0]), best(runs[1])


def ensure_dump(cache: Path, label: str, seed: int) -> Path:
    path = cache / f"arena-{label}-seed{seed}-v{gen_dump.GEN_VERSION}.bin"
    if path.exists() and path.stat().st_size == SIZES[label]:
        return path
    t0 = time.perf_counter()
    gen_dump.generate(path, SIZES[label], seed)
    os.chmod(path, 0o600)
    print(f"generated {path} in {time.perf_counter() - t0:.1f} s", flush=True)
    return path


def warm(path: Path) -> None:
    """Read the file once so every tool starts from the page cache."""
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass


def time_in_process(source, encoding: str, repeat: int) -> tuple[float, int]:
    best, found = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = offheap.strings(source, min_len=MIN_LEN, encoding=encoding)
        best = min(best, time.perf_counter() - t0)
        found = len(result)
        del result
    return best, found


def fmt_rate(nbytes: int, seconds: float) -> str:
    rate = nbytes / seconds / 1e6
    return f"{rate / 1000:.2f} GB/s" if rate >= 1000 else f"{rate:.0f} MB/s"


def print_table(rows: list[Row]) -> None:
    head = f"{'dump':<5} {'tool':<44} {'seconds':>8} {'throughput':>11} {'peak RSS':>9} {'strings':>10} {'sha256':>13} {'=GNU':>5}"
    print(head)
    print("-" * len(head))
    for r in rows:
        rss = f"{r.max_rss_kib / 1024:.0f} MiB" if r.max_rss_kib is not None else "-"
        found = str(r.found) if r.found is not None else "-"
        print(f"{r.dump:<5} {r.tool:<44} {r.seconds:>8.3f} {fmt_rate(r.nbytes, r.seconds):>11} {rss:>9} "
              f"{found:>10} {r.sha256[:12]:>13} {r.same:>5}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/offheap-bench"),
                        help="where the generated dumps live (default /tmp/offheap-bench)")
    parser.add_argument("--big", action="store_true", help="also the 4 GiB dump (peak RSS)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="repetitions on the 64 MiB dump; the best counts (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep-outputs", action="store_true", help="keep the *.out files in the cache")
    args = parser.parse_args(argv)
    gnu = shutil.which("strings")
    if gnu is None:
        print("bench_strings: GNU strings not found (apt-get install binutils)", file=sys.stderr)
        return 1
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    args.cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    labels = ["64M", "1G"] + (["4G"] if args.big else [])
    dumps = {label: ensure_dump(args.cache, label, args.seed) for label in labels}
    gnu_version = subprocess.run([gnu, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    print(f"offheap {offheap.__version__} ({_impl.implementation()} kernels) · {gnu_version} · "
          f"Python {platform.python_version()} · {os.cpu_count()} CPUs · load {os.getloadavg()[0]:.2f}")
    if _impl.implementation() != "cython":
        print("WARNING: the Cython extension is not in use; figures are for the pure-Python twin")
    print(f"min_len {MIN_LEN}; 64 MiB figures are the best of {args.repeat}; larger dumps run once\n",
          flush=True)

    env = child_env()
    cli = [sys.executable, "-m", "offheap", "strings"]
    rows: list[Row] = []
    gnu_runs: dict[tuple[str, str], Run] = {}
    cli_runs: dict[tuple[str, str], Run] = {}
    in_proc: dict[tuple[str, str], float] = {}
    mismatches = []

    cases = [(label, "s") for label in labels] + [("64M", "l")]
    for label, enc in cases:
        path = dumps[label]
        size = SIZES[label]
        repeat = args.repeat if label == "64M" else 1
        warm(path)
        enc_opt = [] if enc == "s" else ["-e", enc]
        tag = "" if enc == "s" else f" -e {enc}"

        if label == "64M":
            seconds, found = time_in_process(str(path), enc, args.repeat)
            in_proc[(label, enc)] = seconds
            rows.append(Row(label, f"offheap.strings(path{', encoding=' + repr(enc) if enc != 's' else ''})",
                            seconds, size, None, found, "", ""))
            data = path.read_bytes()
            seconds_b, found_b = time_in_process(data, enc, args.repeat)
            del data
            rows.append(Row(label, f"offheap.strings(bytes{', encoding=' + repr(enc) if enc != 's' else ''})",
                            seconds_b, size, None, found_b, "", ""))

        out = args.cache / f"{label}-{enc}.out"
        opts = ["-a", "-n", str(MIN_LEN), "-t", "x", *enc_opt, str(path)]
        g, c = best_pair([gnu, *opts], [*cli, *opts], out, repeat, env)
        gnu_runs[(label, enc)] = g
        cli_runs[(label, enc)] = c
        if not args.keep_outputs:
            out.unlink()
        same = c.sha256 == g.sha256
        if not same:
            mismatches.append(f"{label}{tag}")
        rows.append(Row(label, f"GNU strings -a -n {MIN_LEN} -t x{tag}", g.seconds, size, g.max_rss_kib,
                        g.lines, g.sha256, ""))
        rows.append(Row(label, f"python -m offheap strings -a -n {MIN_LEN} -t x{tag}", c.seconds, size,
                        c.max_rss_kib, c.lines, c.sha256, "yes" if same else "NO"))
        if label == "64M" and rows[-4].found != g.lines:
            mismatches.append(f"{label}{tag} (in-process count {rows[-4].found} != GNU lines {g.lines})")
        print(f"  done: {label}{tag}", flush=True)

    # What the CLI pays before reading a byte: interpreter, numpy, offheap imports.
    startup = min(run_measured([*cli[:3], "--version"], args.cache / "startup.out", env).seconds
                  for _ in range(3))
    (args.cache / "startup.out").unlink()

    print()
    print_table(rows)
    print(f"\nCLI start-up alone (python -m offheap --version, best of 3): {startup:.3f} s")
    print("\nRatios against GNU strings in this run (higher is faster):")
    for enc in ("s", "l"):
        g = gnu_runs[("64M", enc)]
        t = in_proc[("64M", enc)]
        print(f"  in-process, 64 MiB -e {enc}: {g.seconds / t:6.1f}x  ({fmt_rate(SIZES['64M'], t)} vs "
              f"{fmt_rate(SIZES['64M'], g.seconds)})" + ("   target >= 20x and >= 3 GB/s" if enc == "s" else ""))
    for (label, enc), c in cli_runs.items():
        g = gnu_runs[(label, enc)]
        note = "   target >= 8x, identical output" if (label, enc) == ("1G", "s") else ""
        print(f"  CLI end to end, {label:>3} -e {enc}: {g.seconds / c.seconds:6.1f}x  "
              f"(identical output: {'yes' if c.sha256 == g.sha256 else 'NO'}){note}")
    print("Peak RSS of the offheap CLI:")
    for (label, enc), c in cli_runs.items():
        note = "   target <= 512 MB" if label == "4G" else ""
        print(f"  {label:>3} -e {enc}: {c.max_rss_kib / 1024:.0f} MiB "
              f"(GNU strings {gnu_runs[(label, enc)].max_rss_kib / 1024:.0f} MiB){note}")
    if mismatches:
        print(f"\nOUTPUT DIFFERS from GNU strings on: {', '.join(mismatches)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
