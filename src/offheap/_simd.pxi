# Which SIMD paths the kernels may take: chosen once at import from what the CPU
# supports (the wheel is built for baseline x86-64; the AVX-512 paths are compiled
# with per-function target attributes and only called when the CPU has them).
#
# OFFHEAP_NO_SIMD=1 in the environment, or _set_simd(False), keeps every kernel on its
# portable path: the tests run both paths against each other and the twin.

import os as _os

cdef extern from *:
    """
    /* 1 when the CPU runs the AVX-512 kernels (F, BW, VL, VBMI, VBMI2, BMI, BMI2,
       LZCNT, POPCNT: what their target attributes name). */
    static int offheap_cpu_avx512(void) {
    #if defined(__GNUC__) && defined(__x86_64__)
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vbmi")
            && __builtin_cpu_supports("avx512vbmi2") && __builtin_cpu_supports("bmi")
            && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("lzcnt")
            && __builtin_cpu_supports("popcnt");
    #else
        return 0;
    #endif
    }
    /* what the kernels read: 0 portable paths only, 1 AVX-512 allowed */
    static int offheap_simd = 0;
    """
    int offheap_cpu_avx512() noexcept nogil
    int offheap_simd


offheap_simd = offheap_cpu_avx512() if _os.environ.get("OFFHEAP_NO_SIMD") != "1" else 0


def _simd_level():
    """'avx512' when the kernels take their AVX-512 paths, else 'portable'."""
    return "avx512" if offheap_simd else "portable"


def _set_simd(bint enabled):
    """Allow the AVX-512 paths (when the CPU has them) or not; returns the previous
    setting. For tests and benchmarks that compare the two paths."""
    global offheap_simd
    previous = bool(offheap_simd)
    offheap_simd = offheap_cpu_avx512() if enabled else 0
    return previous
