"""offheap: find what fills a process's native (off-heap) memory."""

from __future__ import annotations

__version__ = "0.1.0"

from . import errors
from .errors import *  # noqa: F401,F403  (the hierarchy is public API)
from .scan import Strings, iter_strings, strings  # noqa: E402

__all__ = ["strings", "iter_strings", "Strings", "errors"] + list(errors.__all__ if hasattr(errors, "__all__") else [])
