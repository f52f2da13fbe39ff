"""Hand-made events for edge-case tests: build them as dicts, then as the
readers' neutral ``EventChunk`` or as a real Delphes ROOT file written with uproot."""

from __future__ import annotations

import math

import numpy as np

from tasks.events.collections import ROLES, Collection, EventChunk
from tasks.events.delphes import TREE_NAME


def particle(pt, eta, phi, **extra):
    return {"pt": pt, "eta": eta, "phi": phi, **extra}


def event(tracks=(), photons=(), neutrals=(), electrons=(), muons=(), jets=(), met=(30.0, 0.5)):
    """An event; each particle a dict(pt, eta, phi, [pid, x, y, z, charge, btag])."""
    return {
        "tracks": list(tracks),
        "photons": list(photons),
        "neutrals": list(neutrals),
        "electrons": list(electrons),
        "muons": list(muons),
        "jets": list(jets),
        "met": met,
    }


def busy_background(rng, n_tracks=40, n_photons=15, n_neutrals=10):
    """Soft particles spread over the detector, so that the maps are not empty."""

    def spray(n):
        return [
            particle(
                float(rng.uniform(0.6, 8)),
                float(rng.uniform(-2.4, 2.4)),
                float(rng.uniform(-math.pi, math.pi)),
                pid=int(rng.choice([-211, 211])),
                x=float(rng.normal(0, 0.01)),
                y=float(rng.normal(0, 0.01)),
                z=float(rng.normal(0, 30)),
            )
            for _ in range(n)
        ]

    return spray(n_tracks), spray(n_photons), spray(n_neutrals)


_FIELDS = {
    "EFlowTrack": ("tracks", {"PT": "pt", "Eta": "eta", "Phi": "phi", "PID": "pid", "X": "x", "Y": "y", "Z": "z"}),
    "EFlowPhoton": ("photons", {"ET": "pt", "Eta": "eta", "Phi": "phi"}),
    "EFlowNeutralHadron": ("neutrals", {"ET": "pt", "Eta": "eta", "Phi": "phi"}),
    "Electron": ("electrons", {"PT": "pt", "Eta": "eta", "Phi": "phi", "Charge": "charge"}),
    "MuonTight": ("muons", {"PT": "pt", "Eta": "eta", "Phi": "phi", "Charge": "charge"}),
    "Jet": ("jets", {"PT": "pt", "Eta": "eta", "Phi": "phi", "BTag": "btag"}),
}


_KEY_OF_ROLE = {"neutral_hadrons": "neutrals"}
"""The event-dict key of a chunk role, where they differ."""


def to_chunk(events: list[dict]) -> EventChunk:
    """A reader's output for these events (float32-rounded, as ROOT stores them)."""
    out = {}
    for role, fields in ROLES.items():
        key = _KEY_OF_ROLE.get(role, role)
        counts = np.array([len(e[key]) for e in events], np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        columns = {
            f: np.array([p.get("pt" if f == "et" else f, 0) for e in events for p in e[key]], np.float32).astype(
                np.float64
            )
            for f in fields
        }
        out[role] = Collection(offsets=offsets, fields=columns)
    met = np.array([e["met"][0] for e in events], np.float32).astype(np.float64)
    met_phi = np.array([e["met"][1] for e in events], np.float32).astype(np.float64)
    return EventChunk(**out, met=met, met_phi=met_phi)


def write_root(
    path,
    events: list[dict],
    style: str = "uproot",
    drop: tuple[str, ...] = (),
    tree_name: str = TREE_NAME,
    flat_met: bool = False,
):
    """Write ``events`` as a Delphes-schema ROOT file (``style``: uproot or delphes
    branch naming in a TTree, or rntuple); ``drop`` removes fields
    such as 'Jet.BTag' to make a broken file; ``flat_met`` writes MissingET as
    one value per event instead of a collection of one, as some files do."""
    import awkward as ak
    import uproot

    data = {}
    for name, (key, fields) in _FIELDS.items():
        counts = np.array([len(e[key]) for e in events], np.int64)
        record = {}
        for f, src in fields.items():
            if f"{name}.{f}" in drop:
                continue
            dtype = np.int32 if f in ("PID", "Charge") else np.uint32 if f == "BTag" else np.float32
            flat = np.array([p.get(src, 0) for e in events for p in e[key]], dtype)
            record[f] = ak.unflatten(flat, counts)
        data[name] = ak.zip(record)
    met = {f: np.array([e["met"][i] for e in events], np.float32) for i, f in enumerate(("MET", "Phi"))}
    one_each = np.ones(len(events), np.int64)  # a jagged collection of one, as Delphes writes it
    data["MissingET"] = ak.zip(met if flat_met else {f: ak.unflatten(v, one_each) for f, v in met.items()})
    if style == "rntuple":  # uproot 5.7's default for a dict of arrays: an RNTuple with record fields
        with uproot.recreate(path) as f:
            f[tree_name] = data
        return
    naming = {}
    if style == "delphes":
        naming = {"counter_name": lambda c: f"{c}_size", "field_name": lambda outer, inner: f"{outer}.{inner}"}
    with uproot.recreate(path) as f:
        tree = f.mktree(tree_name, {k: v.type for k, v in data.items()}, **naming)
        tree.extend(data)
