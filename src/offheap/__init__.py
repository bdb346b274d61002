"""offheap: find what fills a process's native (off-heap) memory.

The data flows one way: process (``proc``, ``nmt``, ``regions``) → dumps (``dump``,
``manifest``, ``core``) → kernels (``scan``, ``matching``, ``heap``) → attribution
(``attribute``, ``templates``, ``bulk``) → reporters (``report``) and the CLI (``cli``).
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import errors
from .errors import *  # noqa: F401,F403  (the hierarchy is public API)
from .scan import Strings, iter_strings, strings  # noqa: E402
# Loaded eagerly because the function shares its name with its module: importing the
# submodule later would rebind `offheap.attribute` to the module.
from .attribute import Attribution, attribute  # noqa: E402

# The rest of the API loads on first use, so `offheap strings` starts fast (PEP 562).
_LAZY = {
    "scan_many": ".bulk", "BulkResult": ".bulk",
    "PatternSet": ".matching",
    "PayloadType": ".signatures", "Signatures": ".signatures", "load_signatures": ".signatures",
    "builtin_signatures": (".signatures", "builtin"),
    "discover_templates": ".templates", "signatures_from_templates": ".templates",
    "walk_heap": ".heap", "dump_process": ".dump", "load_manifest": ".manifest", "CoreFile": ".core",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'offheap' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name] if isinstance(_LAZY[name], tuple) else (_LAZY[name], name)
    value = getattr(importlib.import_module(module, __name__), attr)
    globals()[name] = value
    return value


__all__ = [
    "strings", "iter_strings", "Strings",
    "attribute", "Attribution", "scan_many", "BulkResult",
    "PatternSet", "PayloadType", "Signatures", "builtin_signatures", "load_signatures",
    "discover_templates", "signatures_from_templates",
    "walk_heap", "dump_process", "load_manifest", "CoreFile",
    "errors", *[n for n in dir(errors) if n[0].isupper() and isinstance(getattr(errors, n), type)],
]
