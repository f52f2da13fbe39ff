"""Event sources: the seam between file formats and the feature kernel.

An event source knows one input format: which file names are its files
(``patterns``), whether a file is usable and how many events it holds
(``inspect``), and how to read an entry range of it as a neutral
``EventChunk`` (``read_chunk``). Ingestion, daily partitions and scoring look
a source up by its ``kind`` in ``SOURCES``; the kind is what travels to the
Dask workers, which look the source up again there.

Adding a format is a class with these members and one entry in
``SOURCES``; the ROOT sources (Delphes, CMS PFNano, CMS NanoAOD) are one
reader (tasks.events.rootfile) with a data config each. ``detect_source``
tells them apart from a file's trees.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

from tasks.core.errors import InputFileError, SettingsError
from tasks.events.collections import EventChunk
from tasks.events.data_config import DataConfig, load_data_config
from tasks.events.delphes import TREE_NAME as DELPHES_TREE
from tasks.events.delphes import DelphesSource
from tasks.events.nanoaod import CANDIDATES, NanoAODSource, PFNanoSource
from tasks.events.nanoaod import TREE_NAME as NANO_TREE
from tasks.events.rootfile import open_file


@runtime_checkable
class EventSource(Protocol):
    """One input format."""

    kind: str
    """The name the source is looked up by (``get_source``), e.g. "delphes"."""
    patterns: tuple[str, ...]
    """Shell-style patterns of its file names (matched at any depth under a directory)."""
    file_type: str
    """What its files are called in messages, e.g. "ROOT"."""
    config: DataConfig
    """Its data config (tasks.events.data_config): tree, collections and fields per role."""

    def inspect(self, path: str) -> int:
        """The number of events of ``path``; raises ``InputFileError`` naming the
        file when it cannot be used (missing, damaged, no events, ...)."""
        ...

    def examine(self, path: str) -> tuple[int, dict[str, str]]:
        """``inspect``, and what ``path`` was matched with per role (e.g. the
        collection that holds the muons), recorded in the dataset's summary: one
        opening of the file for both."""
        ...

    def read_chunk(self, path: str, start: int, stop: int) -> EventChunk:
        """Events [start, stop) of ``path``; raises ``InputFileError`` naming the file."""
        ...


SOURCES: dict[str, EventSource] = {source.kind: source for source in (DelphesSource(), PFNanoSource(), NanoAODSource())}
"""The known sources by kind."""

DEFAULT_SOURCE = "delphes"


def get_source(kind: str = DEFAULT_SOURCE, data_config: str | None = None) -> EventSource:
    """The source of ``kind``, read as the data config at ``data_config`` says
    (default: the source's own, ``data_configs/<kind>.yaml``); a ``SettingsError``
    naming the known ones if there is none."""
    try:
        source = SOURCES[kind]
    except (KeyError, TypeError):
        raise SettingsError(f"unknown event source {kind!r}; known sources: {', '.join(sorted(SOURCES))}") from None
    if data_config is None:
        return source
    return _configured(kind, str(data_config))


@lru_cache(maxsize=16)
def _configured(kind: str, data_config: str) -> EventSource:
    config = load_data_config(data_config)
    if config.source != kind:
        raise SettingsError(f"data config {data_config} is for source {config.source!r}, not {kind!r}")
    return type(SOURCES[kind])(config)


def source_of_config(data_config: str) -> str:
    """The source kind a data config is for."""
    return load_data_config(str(data_config)).source


def detect_source(path: str) -> str:
    """The kind of the ROOT file ``path`` from its trees: a ``Delphes`` tree is
    Delphes; an ``Events`` tree is PFNano with ``PFCands`` branches, plain
    NanoAOD without. An ``InputFileError`` naming the file and what it holds otherwise."""
    with open_file(path) as file:
        names = {k.split(";")[0] for k in file.keys(recursive=False)}
        if DELPHES_TREE in names:
            return DelphesSource.kind
        if NANO_TREE in names:
            tree = file[NANO_TREE]
            if not hasattr(tree, "keys"):
                raise InputFileError(path, f"'{NANO_TREE}' is a {type(tree).__name__}, not a TTree or RNTuple")
            prefix = f"{CANDIDATES}_"
            return PFNanoSource.kind if any(k.startswith(prefix) for k in tree.keys()) else NanoAODSource.kind
    raise InputFileError(
        path,
        f"no known event layout: neither a '{DELPHES_TREE}' tree (Delphes) nor an '{NANO_TREE}' tree "
        f"(CMS NanoAOD/PFNano); the file holds: {', '.join(sorted(names)) or 'nothing'}",
    )


def one_source(kinds: dict[str, str]) -> str:
    """The one source kind of ``kinds`` (file → kind); a ``SettingsError``
    naming the files of each kind when a sample mixes them."""
    found = sorted(set(kinds.values()))
    if len(found) == 1:
        return found[0]
    if not found:
        raise SettingsError("no input file to tell the event source from")
    listing = "; ".join(f"{kind}: {', '.join(sorted(p for p, k in kinds.items() if k == kind))}" for kind in found)
    raise SettingsError(f"the input mixes event sources ({listing}); ingest or score each source separately")


def input_files(directory: str | Path, source: str = DEFAULT_SOURCE) -> list[str]:
    """The files of ``source`` anywhere under ``directory``, sorted; none if it is not a directory."""
    patterns, root = get_source(source).patterns, Path(directory)
    if not root.is_dir():
        return []
    return sorted({str(p) for pattern in patterns for p in root.rglob(pattern)})


def has_input(directory: str | Path, source: str = DEFAULT_SOURCE) -> bool:
    """Whether any file of ``source`` lies anywhere under ``directory`` (stops at the first)."""
    patterns, root = get_source(source).patterns, Path(directory)
    return root.is_dir() and any(any(root.rglob(pattern)) for pattern in patterns)


def is_input_file(path: str | Path, source: str = DEFAULT_SOURCE) -> bool:
    """Whether the name of ``path`` matches one of the patterns of ``source``."""
    patterns = get_source(source).patterns
    return any(Path(path).match(pattern) for pattern in patterns)
