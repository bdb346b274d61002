"""Writing report files from the CLI: never overwrite without --force; '-' is stdout."""

from __future__ import annotations

import os
import sys

from . import CommandError


def write_output(path: str, text: str, force: bool = False) -> None:
    if path == "-":
        sys.stdout.write(text)
        return
    if os.path.exists(path) and not force:
        raise CommandError(f"{path} exists: not overwriting it without --force")
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
