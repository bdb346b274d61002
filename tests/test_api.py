"""The public API: every exported name resolves, to the right kind of object."""

from __future__ import annotations

import importlib
import inspect

import offheap


def test_every_exported_name_resolves():
    for name in offheap.__all__:
        assert getattr(offheap, name) is not None, name


def test_functions_stay_functions_after_their_modules_load():
    # offheap.attribute is both a module and the function it exports
    for module in ("attribute", "bulk", "templates", "heap", "dump", "investigate"):
        importlib.import_module(f"offheap.{module}")
    for name in ("attribute", "strings", "iter_strings", "scan_many", "walk_heap", "dump_process",
                 "discover_templates", "load_signatures", "builtin_signatures"):
        assert inspect.isfunction(getattr(offheap, name)), name
    for name in ("Attribution", "Strings", "PatternSet", "Signatures", "PayloadType", "CoreFile",
                 "OffheapError", "NoSuchProcess", "AccessDenied"):
        assert inspect.isclass(getattr(offheap, name)), name
