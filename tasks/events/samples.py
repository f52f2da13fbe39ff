"""The input of ingestion: samples, each a named set of files of one class.

A sample comes from a directory laid out by class (``discover_samples``, the
files are those of the event source) or from a samples file naming its
files (``load_samples_file``).
"""

from __future__ import annotations

import glob
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tasks.core import schema
from tasks.core.errors import SettingsError
from tasks.events.sources import DEFAULT_SOURCE, get_source, input_files


@dataclass(frozen=True)
class Sample:
    """A named set of input files, all of one class."""

    name: str
    label: int
    files: tuple[str, ...]


def discover_samples(input_dir: str | Path, source: str = DEFAULT_SOURCE) -> list[Sample]:
    """Samples from the files of ``source`` under ``<input_dir>/<class name>/``
    at any depth (qcd, ttbar, wjets), matched by the source's ``patterns``."""
    events = get_source(source)
    root = Path(input_dir)
    if not root.is_dir():
        raise SettingsError(f"input directory {root} does not exist")
    samples = []
    for label, name in enumerate(schema.CLASS_NAMES):
        files = input_files(root / name, source)
        if files:
            samples.append(Sample(name, label, tuple(files)))
    if not samples:
        raise SettingsError(
            f"no {events.file_type} files under {root}/<sample>/ for any of the samples {', '.join(schema.CLASS_NAMES)}; "
            "put each class's files in a subdirectory named after it, or pass a samples file"
        )
    return samples


def load_samples_file(path: str | Path) -> list[Sample]:
    """Samples from a JSON or YAML file::

    samples:
      - {name: ttbar, label: 1, files: ["/eos/.../tt_*.root"]}
    """
    import yaml

    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"cannot read samples file {path}: {exc}") from None
    entries = spec.get("samples") if isinstance(spec, dict) else None
    if not isinstance(entries, list) or not entries:
        raise SettingsError(f"{path}: expected a non-empty list under 'samples'")
    samples = []
    for i, entry in enumerate(entries):
        where = f"{path}: samples[{i}]"
        if not isinstance(entry, dict) or not {"name", "label", "files"} <= entry.keys():
            raise SettingsError(f"{where} needs name, label and files")
        if entry["label"] not in range(len(schema.CLASS_NAMES)):
            raise SettingsError(
                f"{where}: label must be one of 0..{len(schema.CLASS_NAMES) - 1}, got {entry['label']!r}"
            )
        patterns = [entry["files"]] if isinstance(entry["files"], str) else entry["files"]
        files = []
        for pattern in patterns:
            full = str(path.parent / pattern) if not Path(pattern).is_absolute() else pattern
            matched = sorted(glob.glob(full, recursive=True)) if glob.has_magic(full) else [full]
            if not matched:
                raise SettingsError(f"{where}: no file matches {pattern!r}")
            files += matched
        samples.append(Sample(str(entry["name"]), int(entry["label"]), tuple(files)))
    return samples


def check_unique_names(samples: list[Sample]) -> None:
    """Event ids use <sample>/<file name>: two files of a sample may not share a name."""
    names = [s.name for s in samples]
    if len(set(names)) != len(names):
        raise SettingsError(f"sample names must be unique, got {names}")
    for s in samples:
        seen = Counter(Path(f).name for f in s.files)
        dupes = [n for n, c in seen.items() if c > 1]
        if dupes:
            raise SettingsError(
                f"sample {s.name}: several input files are named {', '.join(dupes)}; event ids need unique names"
            )
