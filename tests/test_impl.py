import pytest

from offheap import _impl


def test_extension_loaded():
    """A broken build must not pass silently on the twin."""
    if _impl.FORCED_PURE:
        pytest.skip("OFFHEAP_NO_EXTENSIONS=1: the twin was asked for")
    assert _impl.extension_available(), f"offheap._scan did not import: {_impl.EXTENSION_IMPORT_ERROR}"


def test_selected_implementation_is_used(offheap_impl):
    assert _impl.implementation() == offheap_impl
