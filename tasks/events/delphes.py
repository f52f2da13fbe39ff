"""The Delphes event source: Delphes-schema ROOT files read with uproot, only
the branches in ``COLLECTIONS``, one entry range at a time, as a neutral
``EventChunk`` (tasks.events.collections).

Both namings are accepted: real Delphes files (``EFlowTrack.PT`` under the
``EFlowTrack`` branch) and files written by uproot (``EFlowTrack_PT``).
The generator (tasks.generator) writes files of this schema.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.core.errors import InputFileError
from tasks.events.collections import ROLES, Collection, EventChunk

TREE_NAME = "Delphes"

COLLECTIONS: dict[str, tuple[str, ...]] = {
    "EFlowTrack": ("PT", "Eta", "Phi", "PID", "X", "Y", "Z"),
    "EFlowPhoton": ("ET", "Eta", "Phi"),
    "EFlowNeutralHadron": ("ET", "Eta", "Phi"),
    "Electron": ("PT", "Eta", "Phi", "Charge"),
    "MuonTight": ("PT", "Eta", "Phi", "Charge"),
    "Jet": ("PT", "Eta", "Phi", "BTag"),
    "MissingET": ("MET", "Phi"),
}
"""The branches ingestion reads; nothing else is read from the files."""

ROLE_OF: dict[str, str] = {
    "EFlowTrack": "tracks",
    "EFlowPhoton": "photons",
    "EFlowNeutralHadron": "neutral_hadrons",
    "Electron": "electrons",
    "MuonTight": "muons",
    "Jet": "jets",
}
"""The ``EventChunk`` role of each Delphes collection (MissingET gives ``met``,
``met_phi``). A Delphes field becomes the neutral field of its name in lower
case: ``EFlowTrack.PT`` → ``tracks["pt"]``, ``Jet.BTag`` → ``jets["btag"]``."""

assert {ROLE_OF[c]: tuple(f.lower() for f in fields) for c, fields in COLLECTIONS.items() if c in ROLE_OF} == ROLES


def branch_candidates(collection: str, field: str) -> tuple[str, ...]:
    """Names a (collection, field) branch may have, real Delphes naming first."""
    return (
        f"{collection}.{field}",  # real Delphes (split TClonesArray)
        f"{collection}/{collection}.{field}",  # the same, addressed by full path
        f"{collection}_{field}",  # uproot-written records
    )


class DelphesSource:
    """Delphes-schema ROOT files (``tasks.events.sources.EventSource``)."""

    kind = "delphes"
    patterns: tuple[str, ...] = ("*.root",)
    file_type = "ROOT"

    def inspect(self, path: str) -> int:
        """Check that ``path`` is a usable Delphes file; return its number of events."""
        file, tree = _open_tree(path)
        with file:
            _resolve_branches(path, tree)
            n = int(tree.num_entries)
        if n == 0:
            raise InputFileError(path, f"tree '{TREE_NAME}' contains no events")
        return n

    def read_chunk(self, path: str, start: int, stop: int) -> EventChunk:
        """Read events [start, stop) of ``path``."""
        file, tree = _open_tree(path)
        with file:
            names = _resolve_branches(path, tree)
            arrays = _read_branches(path, tree, list(names.values()), start, stop)
        roles: dict[str, Collection] = {}
        met = met_phi = None
        for collection, fields in COLLECTIONS.items():
            values = {}
            offsets = None
            for field in fields:
                branch = names[(collection, field)]
                field_offsets, values[field] = _csr(arrays[branch])
                if offsets is None:
                    offsets = field_offsets
                elif not np.array_equal(offsets, field_offsets):
                    raise InputFileError(
                        path, f"branch {branch} has a different length per event than the other {collection} branches"
                    )
            if collection == "MissingET":
                # One MissingET object per event; an event without one gets NaN,
                # which the non-finite check then rejects by name.
                has = np.diff(offsets) > 0
                met, met_phi = np.full(len(has), np.nan), np.full(len(has), np.nan)
                met[has] = values["MET"][offsets[:-1][has]]
                met_phi[has] = values["Phi"][offsets[:-1][has]]
            else:
                roles[ROLE_OF[collection]] = Collection(
                    offsets=offsets, fields={f.lower(): v for f, v in values.items()}
                )
        return EventChunk(**roles, met=met, met_phi=met_phi)


def _open_tree(path: str):
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
        tree = file[TREE_NAME]
    except Exception as exc:
        found = sorted({k.split(";")[0] for k in file.keys()})
        raise InputFileError(
            path, f"no TTree named '{TREE_NAME}' (the file holds: {', '.join(found) or 'nothing'})"
        ) from exc
    if not hasattr(tree, "num_entries"):
        raise InputFileError(path, f"'{TREE_NAME}' is a {type(tree).__name__}, not a TTree")
    return file, tree


def _resolve_branches(path: str, tree) -> dict[tuple[str, str], str]:
    """Map every needed (collection, field) to the branch name this file uses."""
    available = set(tree.keys(recursive=True))
    resolved: dict[tuple[str, str], str] = {}
    missing: list[str] = []
    for collection, fields in COLLECTIONS.items():
        for field in fields:
            names = branch_candidates(collection, field)
            name = next((n for n in names if n in available), None)
            if name is None:
                missing.append(f"{collection}.{field}")
            else:
                resolved[(collection, field)] = name
    if missing:
        raise InputFileError(
            path,
            f"tree '{TREE_NAME}' lacks branch(es) {', '.join(missing)} "
            "(looked for Delphes 'Coll.Field' and uproot 'Coll_Field' names)",
        )
    return resolved


def _read_branches(path: str, tree, branches: list[str], entry_start: int, entry_stop: int) -> dict:
    """All ``branches`` in one pass (a third faster than branch by branch); when
    that fails, branch by branch, to name the one that cannot be read."""
    try:
        return tree.arrays(branches, entry_start=entry_start, entry_stop=entry_stop, library="ak", how=dict)
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
