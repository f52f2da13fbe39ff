"""Comparing directory trees in tests."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_hashes(directory: Path) -> dict[str, str]:
    """sha256 of every file under ``directory``, by relative path: equal maps mean byte-identical trees."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }
