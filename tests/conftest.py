"""Run the whole suite on both kernel implementations (multidict-style).

Every test gets the autouse ``offheap_impl`` fixture, parametrised over
``cython`` and ``python``, and, on a CPU where the extension takes its AVX-512
paths, ``portable`` too: the extension with those paths switched off
(``_scan._set_simd(False)``), so the paths other CPUs take are tested as well.
Tests marked ``single_impl`` (slow tests that start real processes and do not
exercise the kernels) run once, on the extension. With OFFHEAP_NO_EXTENSIONS=1
only the twin runs.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from offheap import _impl

settings.register_profile(
    "ci", deadline=None, max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev", deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def pytest_configure(config):
    config.addinivalue_line("markers", "single_impl: run only once, on the compiled extension")


def _simd_paths() -> bool:
    if not _impl.extension_available():
        return False
    from offheap import _scan
    return _scan._simd_level() != "portable"


def _impls(single: bool) -> list[str]:
    if _impl.FORCED_PURE:
        return ["python"]
    if single:
        return ["cython"]
    return ["cython", "portable", "python"] if _simd_paths() else ["cython", "python"]


def pytest_generate_tests(metafunc):
    if "offheap_impl" in metafunc.fixturenames:
        single = metafunc.definition.get_closest_marker("single_impl") is not None
        metafunc.parametrize("offheap_impl", _impls(single), indirect=True)


@pytest.fixture(autouse=True)
def offheap_impl(request):
    name = request.param
    previous = _impl.implementation()
    _impl.select("cython" if name == "portable" else name)
    simd = None
    if name == "portable":
        from offheap import _scan
        simd = _scan._set_simd(False)
    try:
        yield name
    finally:
        if simd is not None:
            from offheap import _scan
            _scan._set_simd(simd)
        _impl.select(previous)
