"""Pure-Python twin of ``offheap._scan``: same functions, same results, no compiler.

Selected by ``OFFHEAP_NO_EXTENSIONS=1`` (see ``_impl.py``); the test suite runs on both.
"""

from ._strings_py import *  # noqa: F401,F403
from ._match_py import *  # noqa: F401,F403
from ._heap_py import *  # noqa: F401,F403
from ._templates_py import *  # noqa: F401,F403
from ._attribute_py import *  # noqa: F401,F403
