"""The real captures in shared/fixtures, beside the repository (CI lays a copy there)."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def fixture(name: str) -> Path:
    """Path of one capture; skips the test with the reason when shared/ is missing."""
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"shared fixtures not found at {FIXTURES} (expected beside the repository)")
    return path
