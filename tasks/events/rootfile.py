"""The reader of every ROOT event source: a tree read with uproot as its data
config says (tasks.events.data_config), one entry range at a time, into a
neutral ``EventChunk`` (tasks.events.collections).

The sources (Delphes, CMS PFNano, CMS NanoAOD) differ only in their config:
which collections and branches hold each role, which objects of a collection
are kept (``select`` by pdgId, ``require`` an ID flag), the b-tag working
point, the track vertex from impact parameters, and whether the file holds
particles at all. Branch names are tried in every naming Delphes, uproot
and NanoAOD use (``branch_candidates``), in a TTree or an RNTuple.
"""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np

from tasks.core.errors import InputFileError
from tasks.events.collections import ROLES, Collection, EventChunk
from tasks.events.data_config import PARTICLE_ROLES, VERTEX_FIELDS, DataConfig, RoleSpec


def branch_candidates(collection: str, field: str) -> tuple[str, ...]:
    """Names a (collection, field) branch may have, real Delphes naming first."""
    return (
        f"{collection}.{field}",  # real Delphes (split TClonesArray)
        f"{collection}/{collection}.{field}",  # the same, addressed by full path
        f"{collection}_{field}",  # uproot-written records, and NanoAOD
    )


class RootSource:
    """A ROOT event source (``tasks.events.sources.EventSource``); subclasses
    name their kind and default config."""

    kind = "root"
    patterns: tuple[str, ...] = ("*.root",)
    file_type = "ROOT"

    def __init__(self, config: DataConfig):
        self.config = config

    def inspect(self, path: str) -> int:
        """Check that ``path`` is a usable file of this source; return its number of events."""
        return self.examine(path)[0]

    def examine(self, path: str) -> tuple[int, dict[str, str]]:
        """The number of events of a usable ``path``, and the collection each role was found in."""
        file, tree = open_tree(path, self.config.tree)
        with file:
            layout = _resolve_branches(path, tree, self.config)[1]
            n = int(tree.num_entries)
        if n == 0:
            raise InputFileError(path, f"tree '{self.config.tree}' contains no events")
        return n, layout

    def read_chunk(self, path: str, start: int, stop: int) -> EventChunk:
        """Read events [start, stop) of ``path``."""
        config = self.config
        file, tree = open_tree(path, config.tree)
        with file:
            names, layout = _resolve_branches(path, tree, config)
            arrays = _read_branches(path, tree, list(dict.fromkeys(names.values())), start, stop)
        # PFNano's roles share the candidates' branches: each is made CSR once
        arrays = {branch: _csr(array) for branch, array in arrays.items()}
        n = stop - start
        ids: dict[int, np.ndarray] = {}  # |pdgId| of a branch, made once for all the roles that select on it
        roles: dict[str, Collection] = {}
        met = met_phi = None
        vertex = None
        if config.roles.get("tracks") is not None and config.roles["tracks"].vertex:
            vertex = [arrays[names[("@vertex", f)]] for f in VERTEX_FIELDS]
        for role, spec in config.roles.items():
            offsets, values = _role_values(path, role, spec, names, arrays, layout)
            offsets, values = _keep(offsets, values, spec, ids)
            values = _float64(values)
            if spec.vertex:
                values |= _vertex_from_impact(offsets, values, vertex, spec.vertex[3], spec.vertex[4], path)
            if spec.working_point is not None:
                values["btag"] = (values["btag"] > spec.working_point).astype(np.float64)
            if spec.isolation:
                charged, total = values.pop("@iso_charged"), values.pop("@iso_all")
                values |= {"iso_ch": charged, "iso_gamma": np.zeros_like(charged), "iso_neu": total - charged}
            values = {k: v for k, v in values.items() if not k.startswith("@")}
            if role == "met":
                # One MissingET object per event; an event without one gets NaN,
                # which the non-finite check then rejects by name.
                has = np.diff(offsets) > 0
                met, met_phi = np.full(len(has), np.nan), np.full(len(has), np.nan)
                met[has] = values["met"][offsets[:-1][has]]
                met_phi[has] = values["phi"][offsets[:-1][has]]
            else:
                roles[role] = Collection(offsets=offsets, fields=values)
        for role in PARTICLE_ROLES:
            roles.setdefault(role, _empty(n, ROLES[role]))  # a source without particles
        return EventChunk(
            **roles,
            met=met,
            met_phi=met_phi,
            particle_content=config.particle_content,
            own_track_max_dr=config.own_track_max_dr,
            match_own_track=config.match_own_track,
        )


def _empty(n: int, fields: tuple[str, ...]) -> Collection:
    return Collection(offsets=np.zeros(n + 1, np.int64), fields={f: np.zeros(0) for f in fields})


def _role_values(path, role, spec: RoleSpec, names, arrays, layout) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(offsets, values by key) of every branch the role reads (``arrays``: CSR by branch), all of one length per event."""
    values: dict[str, np.ndarray] = {}
    offsets = None
    for key, _ in spec.branch_fields():
        branch = names[(role, key)]
        field_offsets, values[key] = arrays[branch]
        if offsets is None:
            offsets = field_offsets
        elif not np.array_equal(offsets, field_offsets):
            raise InputFileError(
                path, f"branch {branch} has a different length per event than the other {layout[role]} branches"
            )
    return offsets, values


def _keep(offsets: np.ndarray, values: dict[str, np.ndarray], spec: RoleSpec, ids: dict[int, np.ndarray]):
    """The objects the config keeps (``select`` by |pdgId|, ``require`` an ID), as CSR again."""
    mask = None
    if spec.select:
        pdg = values["@select"]
        if id(pdg) not in ids:
            ids[id(pdg)] = pdg.astype(np.int32, copy=False)  # pdgIds are integers
        if not spec.require:  # PFNano's particle roles: one pass over the candidates
            table = np.zeros(max(spec.select[1]) + 1, np.bool_)
            table[list(spec.select[1])] = True
            kept, index = _select_pdg(offsets, ids[id(pdg)], table)
            return kept, {k: v.take(index) for k, v in values.items() if k != "@select"}
        mask = np.isin(np.abs(ids[id(pdg)]), spec.select[1])
    if spec.require:
        passed = values["@require"] >= spec.require[1]
        mask = passed if mask is None else mask & passed
    if mask is None:
        return offsets, values
    kept = np.zeros(len(mask) + 1, np.int64)  # kept[i]: objects kept before object i
    np.cumsum(mask, out=kept[1:])
    index = np.flatnonzero(mask)
    return kept[offsets], {k: v.take(index) for k, v in values.items() if k != "@select"}


@numba.njit(cache=True)
def _select_pdg(offsets, pdg, table):
    """(offsets, index) of the objects whose |pdg| is marked in ``table``."""
    n = len(offsets) - 1
    kept = np.zeros(n + 1, np.int64)
    index = np.empty(len(pdg), np.int64)
    k = 0
    for e in range(n):
        for i in range(offsets[e], offsets[e + 1]):
            a = abs(pdg[i])
            if a < len(table) and table[a]:
                index[k] = i
                k += 1
        kept[e + 1] = k
    return kept, index[:k]


def _vertex_from_impact(offsets, values, vertex, scale: float, missing, path: str) -> dict[str, np.ndarray]:
    """A track's x, y, z from its impact parameters relative to the event's
    primary vertex (CMS: d0 = dxy = −Δx·sin φ + Δy·cos φ, dz = Δz, in cm):
    the point of closest approach is PV + d0·(−sin φ, cos φ) + dz·ẑ. A track
    without track details (d0 = dz = ``missing``: CMS keeps them only above a
    pT) is put at the primary vertex."""
    pv = []
    for pv_offsets, values_pv in vertex:
        if not np.array_equal(np.diff(pv_offsets), np.ones(len(pv_offsets) - 1, np.int64)):
            raise InputFileError(path, "the primary vertex must be one per event")
        pv.append(np.asarray(values_pv, np.float64))
    x, y, z = _closest_approach(
        offsets, values["@d0"], values["@dz"], values["phi"], pv[0], pv[1], pv[2], scale,
        np.nan if missing is None else missing,
    )  # fmt: skip
    return {"x": x, "y": y, "z": z}


@numba.njit(cache=True)
def _closest_approach(offsets, d0, dz, phi, pv_x, pv_y, pv_z, scale, missing):
    n = len(d0)
    x, y, z = np.empty(n), np.empty(n), np.empty(n)
    for e in range(len(offsets) - 1):
        for i in range(offsets[e], offsets[e + 1]):
            a, b = d0[i], dz[i]
            if a == missing and b == missing:  # never true for NaN: no marker given
                a, b = 0.0, 0.0
            x[i] = scale * (pv_x[e] - a * np.sin(phi[i]))
            y[i] = scale * (pv_y[e] + a * np.cos(phi[i]))
            z[i] = scale * (pv_z[e] + b)
    return x, y, z


def open_file(path: str):
    """``path`` opened with uproot; an ``InputFileError`` naming it when that is not possible."""
    import uproot

    if not Path(path).exists():
        raise InputFileError(path, "file not found")
    if Path(path).stat().st_size == 0:
        raise InputFileError(path, "empty file (0 bytes)")
    try:
        return uproot.open(path)
    except Exception as exc:  # uproot raises several kinds for non-ROOT or damaged headers
        raise InputFileError(path, f"not a readable ROOT file ({type(exc).__name__}: {exc})") from exc


def open_tree(path: str, tree_name: str):
    file = open_file(path)
    try:
        tree = file[tree_name]  # the newest cycle when there are several
    except Exception as exc:
        found = sorted({k.split(";")[0] for k in file.keys()})
        file.close()
        raise InputFileError(
            path, f"no TTree named '{tree_name}' (the file holds: {', '.join(found) or 'nothing'})"
        ) from exc
    if not hasattr(tree, "num_entries"):
        file.close()
        raise InputFileError(path, f"'{tree_name}' is a {type(tree).__name__}, not a TTree or RNTuple")
    return file, tree


def _find(collection: str, fields, available: set[str]) -> tuple[dict[str, str | None], list[str]]:
    found = {key: next((b for b in branch_candidates(collection, f) if b in available), None) for key, f in fields}
    return found, [f"{collection}.{f}" for key, f in fields if found[key] is None]


def _resolve_branches(path: str, tree, config: DataConfig) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """Map every (role, key) to the branch this file uses, and each role to
    the collection it was found in (the first of its candidates that has
    every field the role reads)."""
    available = set(tree.keys(recursive=True))
    resolved: dict[tuple[str, str], str] = {}
    layout: dict[str, str] = {}
    problems: list[str] = []
    for role, spec in config.roles.items():
        tried = []
        for collection in spec.collections:
            found, lacking = _find(collection, spec.branch_fields(), available)
            if not lacking:
                resolved.update({(role, key): b for key, b in found.items()})
                layout[role] = collection
                break
            tried.append(", ".join(lacking))
        else:
            problems.append(f"{role} ({'; or '.join(tried)})" if len(tried) > 1 else f"{role} ({tried[0]})")
        if spec.vertex:
            pv = spec.vertex[2]
            found, lacking = _find(pv, [(f, f) for f in VERTEX_FIELDS], available)
            if lacking:
                problems.append(f"the primary vertex of the tracks ({', '.join(lacking)})")
            resolved.update({("@vertex", key): b for key, b in found.items() if b})
    if problems:
        raise InputFileError(
            path,
            f"tree '{config.tree}' lacks branch(es) for {'; '.join(problems)} "
            "(looked for 'Coll.Field', 'Coll/Coll.Field' and 'Coll_Field' names)",
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
    """(offsets, values in the file's type) of a jagged branch; a flat branch (one value
    per event: MissingET in some files, NanoAOD's MET_pt) counts as one object per event.
    The values become float64 once the objects kept are chosen (``_float64``)."""
    import awkward as ak

    layout = ak.to_layout(array)
    if isinstance(layout, ak.contents.NumpyArray):
        return np.arange(len(layout) + 1, dtype=np.int64), np.asarray(layout.data)
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray):
        # uproot's usual form: use its buffers directly instead of ak.num/ak.flatten.
        offsets = np.asarray(layout.offsets.data, np.int64)
        values = np.asarray(layout.content.data[offsets[0] : offsets[-1]])
        return offsets - offsets[0], values
    counts = ak.to_numpy(ak.num(array, axis=1)).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, ak.to_numpy(ak.flatten(array))


def _float64(values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, np.float64) for k, v in values.items()}
