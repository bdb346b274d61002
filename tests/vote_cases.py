"""Shared pieces of the vote_strings tests."""

from __future__ import annotations

import numpy as np


def carry_first_string(rng: np.random.Generator, offs: np.ndarray, lens: np.ndarray, base: int,
                       tables, npat: int) -> np.ndarray:
    """Make string 0 begin 1-39 bytes before the window (``base``), as a string the last
    window left open does, and return the carry vote_strings then needs: its start, a
    random automaton state and random matches so far."""
    carry = np.zeros(npat + 3, np.int64)
    first_end = int(offs[0] + lens[0])
    offs[0] = base - int(rng.integers(1, 40))
    lens[0] = first_end - int(offs[0])
    carry[:3] = (1, int(offs[0]), int(rng.integers(0, len(tables.trans) // tables.ncls)) * tables.ncls)
    carry[3:] = rng.integers(0, 3, npat)
    return carry
