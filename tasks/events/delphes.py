"""The Delphes event source: Delphes-schema ROOT files read with uproot, only
the branches in ``COLLECTIONS``, one entry range at a time, as a neutral
``EventChunk`` (tasks.events.collections).

Both namings are accepted: real Delphes files (``EFlowTrack.PT`` under the
``EFlowTrack`` branch) and files written by uproot (``EFlowTrack_PT``), in a
TTree or in an RNTuple (ROOT's columnar format, uproot 5.7's default).
The generator (tasks.generator) writes files of this schema.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.core.errors import InputFileError
from tasks.events.collections import ROLES, Collection, EventChunk
from tasks.events.data_config import DataConfig, load_data_config


def _paper_card() -> DataConfig:
    return load_data_config(None)


TREE_NAME = "Delphes"

COLLECTIONS: dict[str, tuple[str, ...]] = {
    spec.collections[0]: tuple(branch for _, branch in spec.fields) for spec in _paper_card().roles.values()
}
"""The paper card's branches (the default data config's first collections):
what the generator writes. Reading goes by the data config."""

assert _paper_card().tree == TREE_NAME
assert {role: tuple(f for f, _ in spec.fields) for role, spec in _paper_card().roles.items() if role != "met"} == ROLES


def branch_candidates(collection: str, field: str) -> tuple[str, ...]:
    """Names a (collection, field) branch may have, real Delphes naming first."""
    return (
        f"{collection}.{field}",  # real Delphes (split TClonesArray)
        f"{collection}/{collection}.{field}",  # the same, addressed by full path
        f"{collection}_{field}",  # uproot-written records
    )


class DelphesSource:
    """Delphes-schema ROOT files (``tasks.events.sources.EventSource``), read
    as its data config says (default: ``data_configs/delphes.yaml``)."""

    kind = "delphes"
    patterns: tuple[str, ...] = ("*.root",)
    file_type = "ROOT"

    def __init__(self, config: DataConfig | None = None):
        self.config = config or _paper_card()

    def inspect(self, path: str) -> int:
        """Check that ``path`` is a usable Delphes file; return its number of events."""
        return self.examine(path)[0]

    def examine(self, path: str) -> tuple[int, dict[str, str]]:
        """The number of events of a usable ``path``, and the collection each role was found in."""
        file, tree = _open_tree(path, self.config.tree)
        with file:
            layout = _resolve_branches(path, tree, self.config)[1]
            n = int(tree.num_entries)
        if n == 0:
            raise InputFileError(path, f"tree '{self.config.tree}' contains no events")
        return n, layout

    def read_chunk(self, path: str, start: int, stop: int) -> EventChunk:
        """Read events [start, stop) of ``path``."""
        file, tree = _open_tree(path, self.config.tree)
        with file:
            names, layout = _resolve_branches(path, tree, self.config)
            arrays = _read_branches(path, tree, list(names.values()), start, stop)
        roles: dict[str, Collection] = {}
        met = met_phi = None
        for role, spec in self.config.roles.items():
            values = {}
            offsets = None
            for neutral, _ in spec.fields:
                branch = names[(role, neutral)]
                field_offsets, values[neutral] = _csr(arrays[branch])
                if offsets is None:
                    offsets = field_offsets
                elif not np.array_equal(offsets, field_offsets):
                    raise InputFileError(
                        path, f"branch {branch} has a different length per event than the other {layout[role]} branches"
                    )
            if role == "met":
                # One MissingET object per event; an event without one gets NaN,
                # which the non-finite check then rejects by name.
                has = np.diff(offsets) > 0
                met, met_phi = np.full(len(has), np.nan), np.full(len(has), np.nan)
                met[has] = values["met"][offsets[:-1][has]]
                met_phi[has] = values["phi"][offsets[:-1][has]]
            else:
                roles[role] = Collection(offsets=offsets, fields=values)
        return EventChunk(**roles, met=met, met_phi=met_phi)


def _open_tree(path: str, tree_name: str = TREE_NAME):
    import uproot

    if not Path(path).exists():
        raise InputFileError(path, "file not found")
    if Path(path).stat().st_size == 0:
        raise InputFileError(path, "empty file (0 bytes)")
    try:
        file = uproot.open(path)
    except Exception as exc:  # uproot raises several kinds for non-ROOT or damaged headers
        raise InputFileError(path, f"not a readable ROOT file ({type(exc).__name__}: {exc})") from exc
    try:
        tree = file[tree_name]  # the newest cycle when there are several
    except Exception as exc:
        found = sorted({k.split(";")[0] for k in file.keys()})
        raise InputFileError(
            path, f"no TTree named '{tree_name}' (the file holds: {', '.join(found) or 'nothing'})"
        ) from exc
    if not hasattr(tree, "num_entries"):
        raise InputFileError(path, f"'{tree_name}' is a {type(tree).__name__}, not a TTree or RNTuple")
    return file, tree


def _resolve_branches(path: str, tree, config: DataConfig) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """Map every (role, neutral field) to the branch this file uses, and each
    role to the collection it was found in (the first of its candidates
    that has every field)."""
    available = set(tree.keys(recursive=True))
    resolved: dict[tuple[str, str], str] = {}
    layout: dict[str, str] = {}
    problems: list[str] = []
    for role, spec in config.roles.items():
        tried = []
        for collection in spec.collections:
            found = {
                n: next((b for b in branch_candidates(collection, f) if b in available), None) for n, f in spec.fields
            }
            lacking = [f"{collection}.{f}" for n, f in spec.fields if found[n] is None]
            if not lacking:
                resolved.update({(role, n): b for n, b in found.items()})
                layout[role] = collection
                break
            tried.append(", ".join(lacking))
        else:
            problems.append(f"{role} ({'; or '.join(tried)})" if len(tried) > 1 else tried[0])
    if problems:
        raise InputFileError(
            path,
            f"tree '{config.tree}' lacks branch(es) {'; '.join(problems)} "
            "(looked for Delphes 'Coll.Field' and uproot 'Coll_Field' names)",
        )
    return resolved, layout


def _read_branches(path: str, tree, branches: list[str], entry_start: int, entry_stop: int) -> dict:
    """All ``branches`` in one pass (a third faster than branch by branch); when
    that fails, branch by branch, to name the one that cannot be read."""
    try:
        return _by_name(
            tree.arrays(branches, entry_start=entry_start, entry_stop=entry_stop, library="ak", how=dict), branches
        )
    except Exception as exc:
        failure = exc
    for branch in branches:
        try:
            tree[branch].array(entry_start=entry_start, entry_stop=entry_stop, library="ak")
        except Exception as exc:
            failure = exc
            break
    else:
        branch = ", ".join(branches)
    raise InputFileError(
        path,
        f"cannot read branch {branch} entries {entry_start}–{entry_stop} "
        f"({type(failure).__name__}: {failure}); the file may be truncated or damaged",
    ) from failure


def _by_name(arrays: dict, branches: list[str]) -> dict:
    """The arrays keyed by the branch names asked for. An RNTuple (what uproot
    5.7 writes for a dict of record arrays) answers ``Coll.Field`` with the
    whole record ``Coll``: its field is taken out of it."""
    out = {}
    for branch in branches:
        if branch in arrays:
            out[branch] = arrays[branch]
            continue
        collection, _, field = branch.rpartition("/")[2].partition(".")
        if collection not in arrays:
            raise KeyError(f"{branch} (read {', '.join(arrays)})")
        out[branch] = arrays[collection][field]
    return out


def _csr(array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, float64 values) of a jagged branch; a flat branch (one value
    per event, MissingET in some files) counts as one object per event."""
    import awkward as ak

    layout = ak.to_layout(array)
    if isinstance(layout, ak.contents.NumpyArray):
        return np.arange(len(layout) + 1, dtype=np.int64), np.asarray(layout.data, np.float64)
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray):
        # uproot's usual form: use its buffers directly instead of ak.num/ak.flatten.
        offsets = np.asarray(layout.offsets.data, np.int64)
        values = np.asarray(layout.content.data[offsets[0] : offsets[-1]], np.float64)
        return offsets - offsets[0], values
    counts = ak.to_numpy(ak.num(array, axis=1)).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, ak.to_numpy(ak.flatten(array)).astype(np.float64)
