"""The references matching is held to: a naive search and pyahocorasick's own iter()."""

from __future__ import annotations

import ahocorasick


def naive(patterns, data):
    """Every (start, pattern id), sorted: the reference."""
    out = []
    for pid, p in enumerate(patterns):
        i = data.find(p)
        while i >= 0:
            out.append((i, pid))
            i = data.find(p, i + 1)
    return sorted(out)


def pyahocorasick_matches(patterns, data):
    """The oracle: pyahocorasick's own iter() over the bytes as latin-1 text."""
    auto = ahocorasick.Automaton()
    ids: dict[bytes, list[int]] = {}
    for pid, p in enumerate(patterns):
        ids.setdefault(p, []).append(pid)
    for p, pids in ids.items():
        auto.add_word(p.decode("latin-1"), (len(p), pids))
    auto.make_automaton()
    out = []
    for end, (length, pids) in auto.iter(data.decode("latin-1")):
        out.extend((end - length + 1, pid) for pid in pids)
    return sorted(out)
