"""template_hashes alone on 64 MiB arena-like dumps: the AVX-512 path against the
portable one, in the same run (as bench_scan.py's kernel table measures it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from bench_match import best_of, default_dump  # noqa: E402
from offheap import _scan  # noqa: E402

MiB = 1 << 20


def bench_dump(path: Path, repeat: int) -> bool:
    """Print both paths' best time on one dump; True when their hashes are identical."""
    data = path.read_bytes()
    state = np.zeros(4, np.uint64)
    offs, lens = _scan.find_strings(data, 0, len(data), True, 8, "s", False, 0, state)
    text = int(lens.sum())
    print(f"{path.name}: {len(offs)} strings, {text / MiB:.1f} MiB of text, best of {repeat}")
    previous = _scan._set_simd(True)
    try:
        results = {}
        for level in (False, True):
            _scan._set_simd(level)
            name = _scan._simd_level()
            h = _scan.template_hashes(data, 0, offs, lens)
            t, _ = best_of(repeat, lambda: _scan.template_hashes(data, 0, offs, lens))
            results[name] = (t, h)
            print(f"  template_hashes {name:<9} {t * 1e3:7.2f} ms  {text / t / 1e9:5.2f} GB/s")
    finally:
        _scan._set_simd(previous)
    if "avx512" not in results:
        return True
    (tp, hp), (ta, ha) = results["portable"], results["avx512"]
    same = bool(np.array_equal(hp, ha))
    print(f"  speed-up of avx512 over portable: {tp / ta:.2f}x; identical hashes: {same}")
    return same


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dump", type=Path, nargs="+", default=None,
                    help="default: the shared 64 MiB arena-like dump (made when missing)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    same = [bench_dump(path, args.repeat) for path in args.dump or [default_dump()]]
    return 0 if all(same) else 1


if __name__ == "__main__":
    sys.exit(main())
