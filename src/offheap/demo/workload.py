"""A leaking push server in miniature: the workload ``offheap demo`` investigates.

Worker threads build JSON push payloads of three types and copy each into native
memory with libc ``strdup`` (through ctypes), never freeing it — the shape of the
incident offheap was built for (websocket pushes leaked outside any managed heap).
glibc gives each thread its own arena, so the copies land in arena heaps, as a JVM's
zlib or netty allocations would.

No compiler and no JVM needed: only CPython and glibc. The mix is chosen **by bytes**
(default 50 % ``unread_count``, 30 % ``presence``, 20 % ``message_new``): each next
payload is of the type furthest behind its target share, so the shares come out
exact and the workload can say precisely what it leaked.

Protocol (one JSON object per line on stdout)::

    ready {"pid": 123, "bytes": {"unread_count": ..., ...}, "count": {...}, "total": ...}

then it reads commands on stdin, one per line, until EOF or a signal:

    leak MB [TYPE]      leak MB more megabytes (of TYPE only, or of the mix);
                        answers ``leaked {…same fields, cumulative…}``

Run: ``python -m offheap.demo.workload --size 64 --threads 4``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import sys
import threading

__all__ = ["TYPES", "SHARES", "MARKERS", "payload", "Leaker", "main"]

TYPES = ("unread_count", "presence", "message_new")
SHARES = {"unread_count": 0.5, "presence": 0.3, "message_new": 0.2}
# The literal each payload of a type carries (what the demo's signatures look for).
MARKERS = {t: f'"event":"{t}"' for t in TYPES}

_WORDS = ("ok", "see you", "on my way", "lunch?", "meeting moved to 3pm", "thanks!",
          "can you review the deploy", "call me back when you land", "the build is green")


def payload(kind: str, rng: random.Random) -> bytes:
    """One JSON push of ``kind``; numbers and ids vary, the shape does not."""
    uid = rng.randrange(10_000, 10_000_000)
    ts = 1_700_000_000_000 + rng.randrange(0, 10 ** 9)
    if kind == "unread_count":
        text = (f'{{"event":"unread_count","uid":{uid},"room":"r{rng.randrange(1, 99999)}",'
                f'"count":{rng.randrange(0, 500)},"ts":{ts}}}')
    elif kind == "presence":
        text = (f'{{"event":"presence","uid":{uid},"status":"{rng.choice(("online", "away", "offline"))}",'
                f'"device":"{rng.choice(("android", "ios", "web"))}","last_seen":{ts}}}')
    elif kind == "message_new":
        text = (f'{{"event":"message_new","uid":{uid},"from":{rng.randrange(10_000, 10_000_000)},'
                f'"room":"r{rng.randrange(1, 99999)}","msg_id":"{rng.getrandbits(64):016x}",'
                f'"text":"{rng.choice(_WORDS)}","ts":{ts}}}')
    else:
        raise ValueError(f"unknown payload type {kind!r}")
    return text.encode()


class Leaker:
    """Copies payloads into memory malloc'd by libc and never frees them.

    ``leak(n_bytes, shares)`` runs on worker threads (one glibc arena each) and keeps
    exact per-type byte counts: the string bytes of each payload, NUL excluded — what
    a scan of the dump should attribute to that type.
    """

    def __init__(self, threads: int, seed: int = 1):
        if threads < 1:
            raise ValueError("threads must be >= 1")
        libc = ctypes.CDLL(None)
        self._strdup = libc.strdup
        self._strdup.argtypes = [ctypes.c_char_p]
        self._strdup.restype = ctypes.c_void_p     # an int: never wrapped or freed
        self.threads = threads
        self.seed = seed
        self.bytes = {t: 0 for t in TYPES}
        self.count = {t: 0 for t in TYPES}
        self._lock = threading.Lock()
        self._round = 0

    def _work(self, n_bytes: int, shares: dict[str, float], rng: random.Random) -> None:
        strdup = self._strdup
        done = {t: 0 for t in TYPES}
        counts = {t: 0 for t in TYPES}
        kinds = [t for t in TYPES if shares.get(t, 0) > 0]
        total = 0
        while total < n_bytes:
            # The type furthest behind its share goes next: exact shares by bytes.
            kind = min(kinds, key=lambda t: done[t] / shares[t])
            data = payload(kind, rng)
            if not strdup(data):
                raise MemoryError("strdup returned NULL")
            done[kind] += len(data)
            counts[kind] += 1
            total += len(data)
        with self._lock:
            for t in TYPES:
                self.bytes[t] += done[t]
                self.count[t] += counts[t]

    def leak(self, n_bytes: int, shares: dict[str, float] | None = None) -> None:
        """Leak ``n_bytes`` of payloads split over the worker threads."""
        shares = dict(SHARES if shares is None else shares)
        per = -(-n_bytes // self.threads)
        self._round += 1
        workers = [threading.Thread(target=self._work, name=f"push-worker-{k}",
                                    args=(per, shares, random.Random(self.seed * 1000 + self._round * 100 + k)))
                   for k in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    def stats(self) -> dict:
        return {"pid": os.getpid(), "threads": self.threads, "bytes": dict(self.bytes),
                "count": dict(self.count), "total": sum(self.bytes.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offheap.demo.workload",
                                     description="leak JSON push payloads into glibc arenas, then wait")
    parser.add_argument("--size", type=float, default=64.0, help="megabytes (MiB) to leak at start")
    parser.add_argument("--threads", type=int, default=4, help="worker threads (one arena each)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.size < 0 or args.threads < 1:
        parser.error("--size must be >= 0 and --threads >= 1")
    leaker = Leaker(args.threads, args.seed)
    # Each round starts fresh threads: glibc hands an exited thread's arena to the next
    # new thread, so later rounds keep filling the same arenas.
    leaker.leak(int(args.size * (1 << 20)))
    print("ready " + json.dumps(leaker.stats()), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "leak" and len(words) in (2, 3):
            try:
                mb = float(words[1])
            except ValueError:
                print(f"error not a size: {words[1]!r}", flush=True)
                continue
            kind = words[2] if len(words) == 3 else None
            if kind is not None and kind not in TYPES:
                print(f"error unknown type {kind!r}", flush=True)
                continue
            leaker.leak(int(mb * (1 << 20)), {kind: 1.0} if kind else None)
            print("leaked " + json.dumps(leaker.stats()), flush=True)
        else:
            print(f"error unknown command {line.strip()!r}", flush=True)
    # stdin closed: keep the memory and wait to be ended by PID (as a leaking server would).
    threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
