import pytest

from offheap import _impl


def test_extension_loaded():
    """A broken build must not pass silently on the twin."""
    if _impl.FORCED_PURE:
        pytest.skip("OFFHEAP_NO_EXTENSIONS=1: the twin was asked for")
    assert _impl.extension_available(), f"offheap._scan did not import: {_impl.EXTENSION_IMPORT_ERROR}"


def test_selected_implementation_is_used(offheap_impl):
    assert _impl.implementation() == ("cython" if offheap_impl == "portable" else offheap_impl)
    if offheap_impl == "portable":
        from offheap import _scan
        assert _scan._simd_level() == "portable"


def test_twin_stub_and_extension_offer_the_same_kernels():
    """The twin, the type stub and the compiled module name the same kernels."""
    import ast
    from pathlib import Path

    from offheap import _scan_py

    stub = Path(_impl.__file__).with_name("_scan.pyi")
    tree = ast.parse(stub.read_text())
    stubbed = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    stubbed |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign) and n.target.id != "Buffer"}
    helpers = {"normalize_template", "LONG_TOKEN"}   # pure-Python helpers re-exported by the twin
    twin = {n for n in dir(_scan_py) if not n.startswith("_") and not n.startswith("ST_")} - helpers - {"np"}
    assert stubbed == twin
    if _impl.extension_available():
        from offheap import _scan
        assert all(hasattr(_scan, name) for name in stubbed)


@pytest.mark.single_impl
def test_no_simd_environment_keeps_the_portable_paths():
    import subprocess
    import sys

    from clirun import cli_env

    if not _impl.extension_available():
        pytest.skip("no compiled extension")
    code = "from offheap import _scan; print(_scan._simd_level())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**cli_env(), "OFFHEAP_NO_SIMD": "1"}).stdout.strip()
    assert out == "portable"
