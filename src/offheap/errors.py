"""The exceptions offheap raises, as one hierarchy users can catch.

``OffheapError`` is the root. Input problems also subclass ``ValueError`` and
process problems also subclass ``OSError`` where that is what they are, so
callers who already catch those keep working.
"""

from __future__ import annotations


class OffheapError(Exception):
    """Base class of every error offheap raises on purpose."""


# -- input: dumps, captures, signature files ---------------------------------

class InputError(OffheapError, ValueError):
    """Something the user gave us cannot be used (bad file, bad option)."""


class EmptyInputError(InputError):
    """The dump or file holds no bytes at all."""


class InputTooShortError(InputError):
    """The input is shorter than the minimum string length asked for."""


class ParseError(InputError):
    """A capture or config file is malformed.

    ``source`` names the file and ``line`` the 1-based line, when known.
    """

    def __init__(self, message: str, source: str | None = None, line: int | None = None):
        self.source = source
        self.line = line
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        super().__init__(where + message)


# -- process side ----------------------------------------------------------------

class ProcessError(OffheapError):
    """A problem with a target process; carries ``pid``."""

    def __init__(self, pid: int | None, message: str):
        self.pid = pid
        super().__init__(message)


class NoSuchProcess(ProcessError):
    """The process does not exist (or exited while we looked)."""

    def __init__(self, pid: int | None, message: str | None = None):
        super().__init__(pid, message or f"no process with PID {pid}")


class ZombieProcess(NoSuchProcess):
    """The process has exited but not been reaped: it has no memory left to read."""

    def __init__(self, pid: int | None, message: str | None = None):
        super().__init__(pid, message or f"process {pid} is a zombie (exited, not reaped): no memory to read")


class AccessDenied(ProcessError):
    """We may not read the process: not root, no CAP_SYS_PTRACE, or Yama ptrace_scope."""

    HINT = ("run as root or as the target's user with CAP_SYS_PTRACE; "
            "check /proc/sys/kernel/yama/ptrace_scope")

    def __init__(self, pid: int | None, message: str | None = None):
        super().__init__(pid, (message or f"access denied to process {pid}") + f" ({self.HINT})")


class DumpError(ProcessError):
    """Dumping memory failed (gdb error, short read, file exists, ...)."""


class ToolMissing(OffheapError):
    """An external tool we need (gdb, jcmd) is not installed."""


class JcmdError(ProcessError):
    """``jcmd`` ran but could not get an answer from the JVM (attach failed, timed out, ...)."""


class KernelThread(ProcessError):
    """The PID is a kernel thread: it has no user-space memory (no maps, no mem) to read."""

    def __init__(self, pid: int | None, message: str | None = None):
        super().__init__(pid, message or f"process {pid} is a kernel thread: it has no user memory to read")
