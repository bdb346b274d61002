# Type stub of the compiled kernels (offheap._scan); offheap._scan_py is their twin.
from typing import Any

import numpy as np
from numpy.typing import NDArray

Buffer = Any  # bytes, bytearray, memoryview, mmap: anything with the buffer protocol

ENCODINGS: dict[str, tuple[int, int]]

HEAP_KIND_INUSE: int
HEAP_KIND_FREE: int
HEAP_KIND_LAST: int
HEAP_END_OK: int
HEAP_END_FENCEPOST: int
HEAP_BAD_SIZE: int
HEAP_MISALIGNED: int
HEAP_PAST_END: int
HEAP_FOOTER: int
HEAP_MMAPPED_BIT: int
HEAP_HEADER_CUT: int
HEAP_LIST_END: int
HEAP_LIST_LEFT: int
HEAP_LIST_BAD: int
HEAP_LIST_LIMIT: int

def check_encoding(encoding: str) -> tuple[int, int]: ...
def find_strings(buf: Buffer, begin: int, end: int, final: bool, min_len: int, encoding: str,
                 whitespace: bool, base: int, state: NDArray[np.uint64],
                 zero_count: NDArray[np.int64] | None = ...) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]: ...
def format_strings(buf: Buffer, base: int, offsets: NDArray[np.uint64], lengths: NDArray[np.uint64],
                   encoding: str, radix: int, prefix: bytes, sep: bytes) -> bytes: ...
def count_zero_bytes(buf: Buffer, begin: int, end: int) -> int: ...
def ac_scan(buf: Buffer, begin: int, end: int, trans: NDArray[np.int32], classes: NDArray[np.int32], ncls: int,
            out_ptr: NDArray[np.int64], out_ids: NDArray[np.int32], pat_len: NDArray[np.int32],
            start_filter: NDArray[np.uint8], state: int = ..., base: int = ...
            ) -> tuple[NDArray[np.uint64], NDArray[np.int32], int]: ...
def template_hashes(buf: Buffer, base: int, offsets: NDArray[np.uint64], lengths: NDArray[np.uint64],
                    unit: int = ..., lane: int = ...,
                    reps: NDArray[np.int64] | None = ...) -> NDArray[np.uint64]: ...
STRINGS_HASH_CHUNK: int
def strings_and_hashes(buf: Buffer, begin: int, end: int, final: bool, min_len: int, encoding: str,
                       whitespace: bool, base: int, state: NDArray[np.uint64],
                       zero_count: NDArray[np.uint64] | None = ..., chunk: int = ...
                       ) -> tuple[NDArray[np.uint64], NDArray[np.uint64], NDArray[np.uint64], NDArray[np.int64]]: ...
def group_keys(keys: NDArray[np.uint64], lengths: NDArray[np.uint64], classes: NDArray[np.int64] | None = ...) -> Any: ...
def string_types(str_off: NDArray[np.uint64], str_len: NDArray[np.uint64], m_off: NDArray[np.uint64],
                 m_pid: NDArray[np.int32], pat_len: NDArray[np.int64], pat_type: NDArray[np.int64],
                 priority: NDArray[np.int64], pat_counts: NDArray[np.int64] | None = ...
                 ) -> tuple[NDArray[np.int64], NDArray[np.int64]]: ...
def vote_strings(buf: Buffer, base: int, end: int, str_off: NDArray[np.uint64], str_len: NDArray[np.uint64],
                 trans: NDArray[np.int32], classes: NDArray[np.int32], ncls: int,
                 out_ptr: NDArray[np.int64], out_ids: NDArray[np.int32], pat_type: NDArray[np.int64],
                 priority: NDArray[np.int64], pat_counts: NDArray[np.int64], carry: NDArray[np.int64],
                 open_run: bool = ..., open_start: int = ...,
                 weights: NDArray[np.int64] | None = ...) -> NDArray[np.int64]: ...
def tally_classes(cls: NDArray[np.int64], lengths: NDArray[np.uint64], other: int,
                  class_bytes: NDArray[np.int64], class_strings: NDArray[np.int64]) -> NDArray[np.int64]: ...
def copy_groups(reps: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]: ...
def heap_walk(buf: Buffer, start: int, end: int) -> Any: ...
def heap_follow(buf: Buffer, base: int, offsets: Any, sizes: Any, heads: Any, ends: Any, max_steps: int,
                expect: Any, labels: Any, ptr_adjust: Any, link_off: int, mangle: Any, marks: Any,
                per_head: Any = ...) -> Any: ...
