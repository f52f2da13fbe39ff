"""Atomic outputs: a stage writes into a hidden temporary directory next to its
target and renames it into place only when everything is written, so a crash
or a retry never leaves a half dataset for the next stage to read."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def temporary_sibling(final: Path, kind: str) -> Path:
    return final.parent / f".{final.name}.{kind}-{uuid.uuid4().hex[:8]}"


@contextmanager
def atomic_directory(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces ``final`` on success.

    On an exception the temporary directory is removed and ``final``, if it
    existed, is left exactly as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(final, "tmp")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_directory(tmp, final)


def replace_directory(src: Path, final: Path) -> None:
    """Move the complete directory ``src`` to ``final`` (same file system),
    replacing what was there; readers see the old or the new, never a mix."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = temporary_sibling(final, "old") if final.exists() else None
    if old is not None:
        os.rename(final, old)
    os.rename(src, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically, keys sorted so identical data gives identical bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path, "tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())
