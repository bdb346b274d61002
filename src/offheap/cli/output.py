"""Writing report files from the CLI: never overwrite without --force; '-' is stdout."""

from __future__ import annotations

import os
import sys
import tempfile

from . import CommandError


def check_output(path: str, force: bool = False) -> None:
    """Refuse an output path before the work, not after a long scan."""
    if path == "-":
        return
    if os.path.isdir(path):
        raise CommandError(f"{path} is a directory: give a file name")
    if os.path.lexists(path) and not force:
        raise CommandError(f"{path} exists: not overwriting it without --force")


def write_output(path: str, text: str, force: bool = False) -> None:
    """Write ``text`` to ``path`` atomically, 0600 (reports quote the dumps' contents)."""
    if path == "-":
        sys.stdout.write(text)
        return
    check_output(path, force)
    tmp = None
    try:
        # mkstemp creates the file 0600 beside its destination, so os.replace is atomic.
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path) or ".")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        # Name the file the user gave, not our temporary one.
        raise CommandError(f"{path}: cannot write: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
