"""The one place that chooses between the Cython kernels and their pure-Python twin.

Every caller goes through ``kernels()`` at call time (not at import time), so the
test suite can run the whole package on either implementation in one process.
``OFFHEAP_NO_EXTENSIONS=1`` in the environment forces the twin.
"""

from __future__ import annotations

import os
from types import ModuleType

from . import _scan_py

try:  # pragma: no cover - depends on the build
    from . import _scan as _scan_ext
except ImportError as exc:  # pragma: no cover
    _scan_ext = None
    EXTENSION_IMPORT_ERROR: ImportError | None = exc
else:
    EXTENSION_IMPORT_ERROR = None

FORCED_PURE = os.environ.get("OFFHEAP_NO_EXTENSIONS", "") not in ("", "0")

_current: ModuleType = _scan_py if (FORCED_PURE or _scan_ext is None) else _scan_ext


def kernels() -> ModuleType:
    """The kernel module in use: ``offheap._scan`` or ``offheap._scan_py``."""
    return _current


def implementation() -> str:
    """``"cython"`` or ``"python"``."""
    return "cython" if _current is _scan_ext else "python"


def extension_available() -> bool:
    return _scan_ext is not None


def select(name: str) -> None:
    """Switch implementation (``"cython"`` or ``"python"``); used by the test suite."""
    global _current
    if name == "python":
        _current = _scan_py
    elif name == "cython":
        if _scan_ext is None:
            raise ImportError(f"offheap._scan is not built: {EXTENSION_IMPORT_ERROR}")
        _current = _scan_ext
    else:
        raise ValueError(f"unknown implementation {name!r}")
