"""The per-event reference for docs/spec.md steps 1–3, in plain Python.

Deliberately straightforward, in the shape of SparkDLTrigger's Spark Python UDF:
one event at a time, lists and loops, every isolation cone an O(N) scan of
the particle maps. The fast kernel (tasks/events/kernel.py) must agree with it on
every value; the ingestion benchmark measures both. It reads the neutral
``EventChunk`` roles and fields (tasks.events.collections), as the kernel does.
"""

from __future__ import annotations

import math

import numpy as np

from tasks.core import schema
from tasks.events.collections import EventChunk

PASSED, EMPTY_PARTICLE_MAP, NO_ISOLATED_LEPTON = 0, 1, 2


def delta_r(eta1, phi1, eta2, phi2):
    dphi = phi1 - phi2
    if dphi > math.pi:
        dphi -= 2 * math.pi
    elif dphi < -math.pi:
        dphi += 2 * math.pi
    deta = eta1 - eta2
    return math.sqrt(deta * deta + dphi * dphi)


def cone_sum(eta, phi, particle_map):
    return sum(pt for (m_eta, m_phi, pt) in particle_map if delta_r(eta, phi, m_eta, m_phi) < schema.ISOLATION_CONE)


def isolation(eta, phi, pt, own_track_in_map, track_map, photon_map, neutral_map):
    ch = cone_sum(eta, phi, track_map) / pt - (1.0 if own_track_in_map else 0.0)
    return ch, cone_sum(eta, phi, photon_map) / pt, cone_sum(eta, phi, neutral_map) / pt


def four_momentum_row(pt, eta, phi):
    return [pt * math.cosh(eta), pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta), pt, eta, phi]


def sign(x):
    return (x > 0) - (x < 0)


def process_event(ev: dict) -> tuple[int, list[float] | None, list[list[float]] | None]:
    """``ev`` maps chunk role → list of dicts of fields, and 'met', 'met_phi'.

    Returns (status, 14 HLF, LLF rows without padding).
    """
    tracks = [t for t in ev["tracks"] if t["pt"] > schema.TRACK_MAP_MIN_PT]
    photons = [p for p in ev["photons"] if p["et"] > schema.PHOTON_MAP_MIN_ET]
    neutrals = [n for n in ev["neutral_hadrons"] if n["et"] > schema.NEUTRAL_MAP_MIN_ET]
    track_map = [(t["eta"], t["phi"], t["pt"]) for t in tracks]
    photon_map = [(p["eta"], p["phi"], p["et"]) for p in photons]
    neutral_map = [(n["eta"], n["phi"], n["et"]) for n in neutrals]
    if not track_map or not photon_map or not neutral_map:
        return EMPTY_PARTICLE_MAP, None, None

    def first_isolated(leptons):
        for lep in leptons:
            if lep["pt"] > schema.LEPTON_MIN_PT:
                iso = isolation(lep["eta"], lep["phi"], lep["pt"], True, track_map, photon_map, neutral_map)
                if sum(iso) < schema.LEPTON_MAX_ISOLATION:
                    return lep, iso
        return None, None

    electron, e_iso = first_isolated(ev["electrons"])
    muon, m_iso = first_isolated(ev["muons"])
    if electron is None and muon is None:
        return NO_ISOLATED_LEPTON, None, None
    if electron is not None and (muon is None or electron["pt"] >= muon["pt"]):
        lep, lep_iso, is_ele = electron, e_iso, True
    else:
        lep, lep_iso, is_ele = muon, m_iso, False

    rows = []
    lep_row = four_momentum_row(lep["pt"], lep["eta"], lep["phi"]) + [0.0, 0.0, 0.0] + list(lep_iso)
    lep_row += [0, 0, 0, 1 if is_ele else 0, 0 if is_ele else 1, lep["charge"]]
    rows.append(lep_row)

    n_tracks = 0
    for t in tracks:
        if n_tracks == schema.MAX_TRACKS:
            break
        if delta_r(t["eta"], t["phi"], lep["eta"], lep["phi"]) > schema.OWN_TRACK_MAX_DR:
            iso = isolation(t["eta"], t["phi"], t["pt"], True, track_map, photon_map, neutral_map)
            rows.append(
                four_momentum_row(t["pt"], t["eta"], t["phi"])
                + [t["x"], t["y"], t["z"]]
                + list(iso)
                + [1, 0, 0, 0, 0, sign(t["pid"])]
            )
            n_tracks += 1
    for p in photons[: schema.MAX_PHOTONS]:
        iso = isolation(p["eta"], p["phi"], p["et"], False, track_map, photon_map, neutral_map)
        rows.append(four_momentum_row(p["et"], p["eta"], p["phi"]) + [0.0, 0.0, 0.0] + list(iso) + [0, 0, 1, 0, 0, 0])
    for n in neutrals[: schema.MAX_NEUTRALS]:
        iso = isolation(n["eta"], n["phi"], n["et"], False, track_map, photon_map, neutral_map)
        rows.append(four_momentum_row(n["et"], n["eta"], n["phi"]) + [0.0, 0.0, 0.0] + list(iso) + [0, 1, 0, 0, 0, 0])

    jets = [j for j in ev["jets"] if j["pt"] > schema.JET_MIN_PT and abs(j["eta"]) < schema.JET_MAX_ABS_ETA]
    met, met_phi = ev["met"], ev["met_phi"]
    hlf = [
        sum(j["pt"] for j in jets),
        met,
        met_phi,
        2 * met * lep["pt"] * (1 - math.cos(lep["phi"] - met_phi)),
        len(jets),
        sum(1 for j in jets if j["btag"] > 0),
        lep["pt"],
        lep["eta"],
        lep["phi"],
        *lep_iso,
        lep["charge"],
        1 if is_ele else 0,
    ]
    return PASSED, hlf, rows


def events_from_chunk(chunk: EventChunk):
    """Per-event dicts from a reader's ``EventChunk`` (what a Spark row would hold)."""
    n = len(chunk)
    per_collection = {}
    for name, coll in chunk.collections().items():
        columns = {f: a.tolist() for f, a in coll.fields.items()}
        off = coll.offsets.tolist()
        per_collection[name] = [
            [{f: columns[f][i] for f in columns} for i in range(off[e], off[e + 1])] for e in range(n)
        ]
    for e in range(n):
        ev = {name: per_collection[name][e] for name in per_collection}
        ev["met"], ev["met_phi"] = float(chunk.met[e]), float(chunk.met_phi[e])
        yield ev


def reference_features(chunk: EventChunk):
    """Run the reference on every event; returns (status array, hlf list, llf list)."""
    statuses, hlfs, llfs = [], [], []
    for ev in events_from_chunk(chunk):
        status, hlf, llf = process_event(ev)
        statuses.append(status)
        hlfs.append(hlf)
        llfs.append(llf)
    return np.array(statuses, np.int8), hlfs, llfs
