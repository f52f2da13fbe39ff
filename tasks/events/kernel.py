"""docs/spec.md steps 1–3 on a chunk of events: selection, 801 × 19 LLF, 14 HLF.

The work is a numba kernel over flat (CSR) arrays: one loop over events, and
for each particle a cone sum over the event's particle maps, binned on an
(η, φ) grid of cells a little wider than the cone, so that only the 3 × 3
cells around the particle are visited before the same ΔR < 0.3 test as
docs/spec.md. The visited cells are a superset of the cone, so the result is that
of the O(N²) definition (tests/support/reference.py checks this value for value) at a
fraction of the cost.

The kernel reads the neutral ``EventChunk`` (tasks.events.collections), never
a file format's names, and writes every LLF and HLF column through its name:
``compute_features`` turns the column order it is given (``schema.LLF_COLUMNS``
and ``schema.HLF_COLUMNS`` by default) into index arrays that the numba
functions write through.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np

from tasks.core import schema
from tasks.core.errors import SettingsError
from tasks.events.collections import EventChunk

# Status codes per event, in cutflow order.
PASSED = 0
EMPTY_PARTICLE_MAP = 1
NO_ISOLATED_LEPTON = 2

_CONE = schema.ISOLATION_CONE
_WINDOW = schema.ISOLATION_CONE + 1e-9  # a hair wider: rounding never drops a cone member
_TWO_PI = 2.0 * math.pi


# Every feature the kernel writes, by name: the slot of a quantity is its
# position in the schema's column tuple, and the kernel writes slot k of a
# row to column ``llf_index[k]`` (``hlf_index[k]``) of the requested order.
_LLF_SLOT = {name: k for k, name in enumerate(schema.LLF_COLUMNS)}
_HLF_SLOT = {name: k for k, name in enumerate(schema.HLF_COLUMNS)}
L_ENERGY, L_PX, L_PY, L_PZ = _LLF_SLOT["Energy"], _LLF_SLOT["Px"], _LLF_SLOT["Py"], _LLF_SLOT["Pz"]
L_PT, L_ETA, L_PHI = _LLF_SLOT["Pt"], _LLF_SLOT["Eta"], _LLF_SLOT["Phi"]
L_VTX_X, L_VTX_Y, L_VTX_Z = _LLF_SLOT["vtxX"], _LLF_SLOT["vtxY"], _LLF_SLOT["vtxZ"]
L_ISO_CH, L_ISO_GAMMA, L_ISO_NEU = _LLF_SLOT["ChPFIso"], _LLF_SLOT["GammaPFIso"], _LLF_SLOT["NeuPFIso"]
L_IS_CH_HAD, L_IS_NEU_HAD, L_IS_GAMMA = _LLF_SLOT["isChHad"], _LLF_SLOT["isNeuHad"], _LLF_SLOT["isGamma"]
L_IS_ELE, L_IS_MU, L_CHARGE = _LLF_SLOT["isEle"], _LLF_SLOT["isMu"], _LLF_SLOT["Charge"]
H_HT, H_MET, H_PHI_MET, H_MT = _HLF_SLOT["HT"], _HLF_SLOT["MET"], _HLF_SLOT["PhiMET"], _HLF_SLOT["MT"]
H_N_JETS, H_N_BJETS = _HLF_SLOT["nJets"], _HLF_SLOT["nBjets"]
H_LEP_PT, H_LEP_ETA, H_LEP_PHI = _HLF_SLOT["LepPt"], _HLF_SLOT["LepEta"], _HLF_SLOT["LepPhi"]
H_LEP_ISO_CH, H_LEP_ISO_GAMMA, H_LEP_ISO_NEU = _HLF_SLOT["LepIsoCh"], _HLF_SLOT["LepIsoGamma"], _HLF_SLOT["LepIsoNeu"]
H_LEP_CHARGE, H_LEP_IS_ELE = _HLF_SLOT["LepCharge"], _HLF_SLOT["LepIsEle"]


def column_index(columns: Sequence[str], known: Sequence[str], what: str) -> np.ndarray:
    """``index[k]`` = the position of ``known[k]`` in ``columns``, as int64;
    ``columns`` must name every one of ``known`` exactly once."""
    columns = tuple(columns)
    problems = []
    unknown = [c for c in columns if c not in known]
    missing = [k for k in known if k not in columns]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if unknown:
        problems.append(f"unknown {', '.join(map(repr, unknown))}")
    if missing:
        problems.append(f"missing {', '.join(map(repr, missing))}")
    if repeated:
        problems.append(f"repeated {', '.join(map(repr, repeated))}")
    if problems:
        raise SettingsError(f"{what} columns must name each of {', '.join(known)} once: {'; '.join(problems)}")
    return np.array([columns.index(k) for k in known], np.int64)


@dataclass
class ChunkFeatures:
    """Features of the events of a chunk; arrays cover every event read,
    ``status`` says which passed. Columns are in the order of ``llf_columns``
    and ``hlf_columns``."""

    status: np.ndarray  # int8 (n_events,)
    hlf: np.ndarray  # float32 (n_events, 14), rows of rejected events are zero
    llf: np.ndarray  # float32 (total_rows, 19), the filled rows of passing events
    llf_offsets: np.ndarray  # int64 (n_events + 1,), into llf rows
    group_counts: np.ndarray  # int32 (n_events, 3): tracks, photons, neutrals in the LLF
    llf_columns: tuple[str, ...] = schema.LLF_COLUMNS
    hlf_columns: tuple[str, ...] = schema.HLF_COLUMNS


@numba.njit(cache=True, inline="always")
def _delta_phi(a: float, b: float) -> float:
    d = a - b
    if d > math.pi:
        d -= _TWO_PI
    elif d < -math.pi:
        d += _TWO_PI
    return d


@numba.njit(cache=True, inline="always")
def _delta_r(eta1: float, phi1: float, eta2: float, phi2: float) -> float:
    deta = eta1 - eta2
    dphi = _delta_phi(phi1, phi2)
    return math.sqrt(deta * deta + dphi * dphi)


# The cone sums look up particle maps binned on a fixed (η, φ) grid whose
# cells are wider than the cone in both directions, so every particle within
# ΔR < 0.3 of a point lies in the 3 × 3 cells around the point's cell. Cells
# are laid out φ-row by φ-row, so the three η-neighbours of a row are one
# contiguous range of the map. η outside the grid is clamped into the edge
# cells, which keeps neighbours neighbours.
_CELL_ETA = 0.31
_N_ETA = 40  # covers |η| < 6.2; beyond is clamped
_ETA_EDGE = 0.5 * _N_ETA * _CELL_ETA
_N_PHI = 20  # cells of 2π/20 = 0.314 > 0.3
_CELL_PHI = _TWO_PI / _N_PHI
_N_CELLS = _N_ETA * _N_PHI
assert _CELL_ETA > _WINDOW and _CELL_PHI > _WINDOW


@numba.njit(cache=True, inline="always")
def _regular(eta: float, phi: float) -> bool:
    """Whether the grid applies: finite η, φ within [-π, π] (Delphes' range)."""
    return math.isfinite(eta) and abs(phi) <= math.pi


@numba.njit(cache=True, inline="always")
def _cell_eta(eta: float) -> int:
    return min(max(int(math.floor((eta + _ETA_EDGE) / _CELL_ETA)), 0), _N_ETA - 1)


@numba.njit(cache=True, inline="always")
def _cell_phi(phi: float) -> int:
    return min(int(math.floor((phi + math.pi) / _CELL_PHI)), _N_PHI - 1)


@numba.njit(cache=True)
def _particle_map(start, stop, pt, eta, phi, threshold):
    """The particles of one event above threshold, binned on the grid:
    (η, φ, pT, cell_start, regular). An event with a particle off the grid
    (non-finite η, |φ| > π) keeps its particles but is searched exhaustively,
    which gives exactly the docs/spec.md definition whatever the values."""
    n = 0
    regular = True
    for i in range(start, stop):
        if pt[i] > threshold:
            n += 1
            if not _regular(eta[i], phi[i]):
                regular = False
    cell = np.empty(n, np.int64)
    cell_start = np.zeros(_N_CELLS + 1, np.int64)
    k = 0
    for i in range(start, stop):
        if pt[i] > threshold:
            c = _cell_phi(phi[i]) * _N_ETA + _cell_eta(eta[i]) if regular else 0
            cell[k] = c
            cell_start[c + 1] += 1
            k += 1
    for c in range(_N_CELLS):
        cell_start[c + 1] += cell_start[c]
    m_eta = np.empty(n)
    m_phi = np.empty(n)
    m_pt = np.empty(n)
    fill = cell_start[:-1].copy()
    k = 0
    for i in range(start, stop):
        if pt[i] > threshold:
            j = fill[cell[k]]
            fill[cell[k]] += 1
            m_eta[j] = eta[i]
            m_phi[j] = phi[i]
            m_pt[j] = pt[i]
            k += 1
    return m_eta, m_phi, m_pt, cell_start, regular


@numba.njit(cache=True, inline="always")
def _range_sum(eta, phi, m_eta, m_phi, m_pt, lo, hi):
    total = 0.0
    for j in range(lo, hi):
        dphi = _delta_phi(phi, m_phi[j])
        # ΔR ≥ |Δφ|: most candidates fail this before the sqrt; the margin
        # keeps rounding from ever deciding.
        if abs(dphi) > _WINDOW:
            continue
        deta = eta - m_eta[j]  # the same arithmetic as _delta_r, Δφ computed once
        if math.sqrt(deta * deta + dphi * dphi) < _CONE:
            total += m_pt[j]
    return total


@numba.njit(cache=True, inline="always")
def _cone_sum(eta, phi, cell_eta, cell_phi, pmap):
    """Σ pT of the map's particles with ΔR < 0.3 from (η, φ), whose grid cell is
    (cell_eta, cell_phi), or (-1, -1) when the point is off the grid."""
    m_eta, m_phi, m_pt, cell_start, regular = pmap
    if cell_eta < 0 or not regular:
        return _range_sum(eta, phi, m_eta, m_phi, m_pt, 0, len(m_pt))
    lo_e = max(cell_eta - 1, 0)
    hi_e = min(cell_eta + 1, _N_ETA - 1)
    total = 0.0
    for dp in (-1, 0, 1):
        row = ((cell_phi + dp) % _N_PHI) * _N_ETA
        total += _range_sum(eta, phi, m_eta, m_phi, m_pt, cell_start[row + lo_e], cell_start[row + hi_e + 1])
    return total


@numba.njit(cache=True)
def _isolation(eta, phi, pt, own_share, tmap, gmap, nmap):
    """Relative charged, photon and neutral isolation of a particle (docs/spec.md);
    ``own_share`` is the part of the charged cone sum that is the particle's own
    track, over its pT (1 for a track itself, 0 for a calorimeter deposit)."""
    cell_eta, cell_phi = (_cell_eta(eta), _cell_phi(phi)) if _regular(eta, phi) else (-1, -1)
    ch = _cone_sum(eta, phi, cell_eta, cell_phi, tmap) / pt
    ch -= own_share
    gam = _cone_sum(eta, phi, cell_eta, cell_phi, gmap) / pt
    neu = _cone_sum(eta, phi, cell_eta, cell_phi, nmap) / pt
    return ch, gam, neu


@numba.njit(cache=True)
def _own_share(eta, phi, pt, trk_start, trk_stop, trk_pt, trk_eta, trk_phi, own_dr):
    """The pT of the tracks within ``own_dr`` of a lepton (those its LLF rows
    leave out), over the lepton's pT: 0 when its own track is not there."""
    own = 0.0
    for i in range(trk_start, trk_stop):
        if trk_pt[i] > schema.TRACK_MAP_MIN_PT and _delta_r(trk_eta[i], trk_phi[i], eta, phi) <= own_dr:
            own += trk_pt[i]
    return own / pt


@numba.njit(cache=True)
def _first_isolated(start, stop, pt, eta, phi, tmap, gmap, nmap, trk, own_dr, match_own):
    """The first lepton above the pT cut that is isolated. Delphes always has a
    lepton's track, at the lepton's pT (its share is 1); with ``match_own`` it
    is looked up among ``trk`` (start, stop, pt, eta, phi) instead (CMS files:
    PF may have made the electron a photon)."""
    for i in range(start, stop):
        if pt[i] > schema.LEPTON_MIN_PT:
            own = (
                _own_share(eta[i], phi[i], pt[i], trk[0], trk[1], trk[2], trk[3], trk[4], own_dr) if match_own else 1.0
            )
            ch, gam, neu = _isolation(eta[i], phi[i], pt[i], own, tmap, gmap, nmap)
            if ch + gam + neu < schema.LEPTON_MAX_ISOLATION:
                return i, ch, gam, neu
    return -1, 0.0, 0.0, 0.0


@numba.njit(cache=True)
def _fill_row(out, col, row, pt, eta, phi, iso):
    out[row, col[L_ENERGY]] = pt * math.cosh(eta)
    out[row, col[L_PX]] = pt * math.cos(phi)
    out[row, col[L_PY]] = pt * math.sin(phi)
    out[row, col[L_PZ]] = pt * math.sinh(eta)
    out[row, col[L_PT]] = pt
    out[row, col[L_ETA]] = eta
    out[row, col[L_PHI]] = phi
    out[row, col[L_ISO_CH]] = iso[0]
    out[row, col[L_ISO_GAMMA]] = iso[1]
    out[row, col[L_ISO_NEU]] = iso[2]


@numba.njit(cache=True)
def _select(
    trk_off,
    trk_pt,
    trk_eta,
    trk_phi,
    pho_off,
    pho_et,
    pho_eta,
    pho_phi,
    neu_off,
    neu_et,
    neu_eta,
    neu_phi,
    ele_off,
    ele_pt,
    ele_eta,
    ele_phi,
    mu_off,
    mu_pt,
    mu_eta,
    mu_phi,
    own_dr,
    match_own,
):
    """Pass 1: status, selected lepton (index, is-electron, isolation) and the
    number of LLF rows of every event."""
    n = len(trk_off) - 1
    status = np.zeros(n, np.int8)
    lep_index = np.full(n, -1, np.int64)
    lep_is_ele = np.zeros(n, np.bool_)
    lep_iso = np.zeros((n, 3))
    counts = np.zeros((n, 3), np.int32)
    for e in range(n):
        tmap = _particle_map(trk_off[e], trk_off[e + 1], trk_pt, trk_eta, trk_phi, schema.TRACK_MAP_MIN_PT)
        gmap = _particle_map(pho_off[e], pho_off[e + 1], pho_et, pho_eta, pho_phi, schema.PHOTON_MAP_MIN_ET)
        nmap = _particle_map(neu_off[e], neu_off[e + 1], neu_et, neu_eta, neu_phi, schema.NEUTRAL_MAP_MIN_ET)
        if len(tmap[0]) == 0 or len(gmap[0]) == 0 or len(nmap[0]) == 0:
            status[e] = EMPTY_PARTICLE_MAP
            continue
        trk = (trk_off[e], trk_off[e + 1], trk_pt, trk_eta, trk_phi)
        ie, ech, egam, eneu = _first_isolated(
            ele_off[e], ele_off[e + 1], ele_pt, ele_eta, ele_phi, tmap, gmap, nmap, trk, own_dr, match_own
        )
        im, mch, mgam, mneu = _first_isolated(
            mu_off[e], mu_off[e + 1], mu_pt, mu_eta, mu_phi, tmap, gmap, nmap, trk, own_dr, match_own
        )
        if ie < 0 and im < 0:
            status[e] = NO_ISOLATED_LEPTON
            continue
        # Deviation 1 of docs/spec.md: the larger pT wins (the electron on a tie).
        if ie >= 0 and (im < 0 or ele_pt[ie] >= mu_pt[im]):
            lep_index[e] = ie
            lep_is_ele[e] = True
            lep_iso[e, 0], lep_iso[e, 1], lep_iso[e, 2] = ech, egam, eneu
            leta, lphi = ele_eta[ie], ele_phi[ie]
        else:
            lep_index[e] = im
            lep_iso[e, 0], lep_iso[e, 1], lep_iso[e, 2] = mch, mgam, mneu
            leta, lphi = mu_eta[im], mu_phi[im]
        ntrk = 0
        for i in range(trk_off[e], trk_off[e + 1]):
            if trk_pt[i] > schema.TRACK_MAP_MIN_PT and _delta_r(trk_eta[i], trk_phi[i], leta, lphi) > own_dr:
                ntrk += 1
        counts[e, 0] = min(ntrk, schema.MAX_TRACKS)
        counts[e, 1] = min(len(gmap[0]), schema.MAX_PHOTONS)
        counts[e, 2] = min(len(nmap[0]), schema.MAX_NEUTRALS)
    return status, lep_index, lep_is_ele, lep_iso, counts


@numba.njit(cache=True)
def _fill_calo_rows(llf, col, row, start, stop, et, eta, phi, cap, onehot, tmap, gmap, nmap):
    """Photon or neutral-hadron rows: the first ``cap`` above the map threshold."""
    iso = np.zeros(3)
    taken = 0
    for j in range(start, stop):
        if taken == cap:
            break
        if et[j] > schema.PHOTON_MAP_MIN_ET:  # == NEUTRAL_MAP_MIN_ET, asserted below
            iso[0], iso[1], iso[2] = _isolation(eta[j], phi[j], et[j], 0.0, tmap, gmap, nmap)
            _fill_row(llf, col, row, et[j], eta[j], phi[j], iso)
            llf[row, col[onehot]] = 1.0
            row += 1
            taken += 1
    return row


@numba.njit(cache=True)
def _build(
    status,
    lep_index,
    lep_is_ele,
    lep_iso,
    counts,
    row_offsets,
    trk_off,
    trk_pt,
    trk_eta,
    trk_phi,
    trk_pid,
    trk_x,
    trk_y,
    trk_z,
    pho_off,
    pho_et,
    pho_eta,
    pho_phi,
    neu_off,
    neu_et,
    neu_eta,
    neu_phi,
    ele_pt,
    ele_eta,
    ele_phi,
    ele_q,
    mu_pt,
    mu_eta,
    mu_phi,
    mu_q,
    jet_off,
    jet_pt,
    jet_eta,
    jet_btag,
    met,
    met_phi,
    own_dr,
    col,
    hcol,
):
    """Pass 2: the LLF rows and HLF of the passing events; slot k goes to LLF
    column ``col[k]`` and HLF column ``hcol[k]``."""
    n = len(status)
    llf = np.zeros((row_offsets[-1], len(col)), np.float32)
    hlf = np.zeros((n, len(hcol)), np.float32)
    row_iso = np.zeros(3)
    for e in range(n):
        if status[e] != PASSED:
            continue
        tmap = _particle_map(trk_off[e], trk_off[e + 1], trk_pt, trk_eta, trk_phi, schema.TRACK_MAP_MIN_PT)
        gmap = _particle_map(pho_off[e], pho_off[e + 1], pho_et, pho_eta, pho_phi, schema.PHOTON_MAP_MIN_ET)
        nmap = _particle_map(neu_off[e], neu_off[e + 1], neu_et, neu_eta, neu_phi, schema.NEUTRAL_MAP_MIN_ET)
        i = lep_index[e]
        if lep_is_ele[e]:
            lpt, leta, lphi, lq = ele_pt[i], ele_eta[i], ele_phi[i], ele_q[i]
        else:
            lpt, leta, lphi, lq = mu_pt[i], mu_eta[i], mu_phi[i], mu_q[i]
        row = row_offsets[e]
        _fill_row(llf, col, row, lpt, leta, lphi, lep_iso[e])
        llf[row, col[L_IS_ELE]] = 1.0 if lep_is_ele[e] else 0.0
        llf[row, col[L_IS_MU]] = 0.0 if lep_is_ele[e] else 1.0
        llf[row, col[L_CHARGE]] = lq
        row += 1
        taken = 0
        for j in range(trk_off[e], trk_off[e + 1]):
            if taken == counts[e, 0]:
                break
            if trk_pt[j] > schema.TRACK_MAP_MIN_PT and _delta_r(trk_eta[j], trk_phi[j], leta, lphi) > own_dr:
                row_iso[0], row_iso[1], row_iso[2] = _isolation(
                    trk_eta[j], trk_phi[j], trk_pt[j], 1.0, tmap, gmap, nmap
                )
                _fill_row(llf, col, row, trk_pt[j], trk_eta[j], trk_phi[j], row_iso)
                llf[row, col[L_VTX_X]] = trk_x[j]
                llf[row, col[L_VTX_Y]] = trk_y[j]
                llf[row, col[L_VTX_Z]] = trk_z[j]
                llf[row, col[L_IS_CH_HAD]] = 1.0
                llf[row, col[L_CHARGE]] = np.sign(trk_pid[j])
                row += 1
                taken += 1
        row = _fill_calo_rows(
            llf,
            col,
            row,
            pho_off[e],
            pho_off[e + 1],
            pho_et,
            pho_eta,
            pho_phi,
            counts[e, 1],
            L_IS_GAMMA,
            tmap,
            gmap,
            nmap,
        )
        row = _fill_calo_rows(
            llf,
            col,
            row,
            neu_off[e],
            neu_off[e + 1],
            neu_et,
            neu_eta,
            neu_phi,
            counts[e, 2],
            L_IS_NEU_HAD,
            tmap,
            gmap,
            nmap,
        )
        ht = 0.0
        njets = 0
        nbjets = 0
        for j in range(jet_off[e], jet_off[e + 1]):
            if jet_pt[j] > schema.JET_MIN_PT and abs(jet_eta[j]) < schema.JET_MAX_ABS_ETA:
                ht += jet_pt[j]
                njets += 1
                if jet_btag[j] > 0:
                    nbjets += 1
        h = hlf[e]
        h[hcol[H_HT]] = ht
        h[hcol[H_MET]] = met[e]
        h[hcol[H_PHI_MET]] = met_phi[e]
        h[hcol[H_MT]] = 2.0 * met[e] * lpt * (1.0 - math.cos(lphi - met_phi[e]))
        h[hcol[H_N_JETS]] = njets
        h[hcol[H_N_BJETS]] = nbjets
        h[hcol[H_LEP_PT]] = lpt
        h[hcol[H_LEP_ETA]] = leta
        h[hcol[H_LEP_PHI]] = lphi
        h[hcol[H_LEP_ISO_CH]] = lep_iso[e, 0]
        h[hcol[H_LEP_ISO_GAMMA]] = lep_iso[e, 1]
        h[hcol[H_LEP_ISO_NEU]] = lep_iso[e, 2]
        h[hcol[H_LEP_CHARGE]] = lq
        h[hcol[H_LEP_IS_ELE]] = 1.0 if lep_is_ele[e] else 0.0
    return llf, hlf


@numba.njit(cache=True)
def _first_given(start, stop, pt, iso_sum):
    for i in range(start, stop):
        if pt[i] > schema.LEPTON_MIN_PT and iso_sum[i] < schema.LEPTON_MAX_ISOLATION:
            return i
    return -1


@numba.njit(cache=True)
def _select_given(ele_off, ele_pt, ele_iso, mu_off, mu_pt, mu_iso):
    """Pass 1 for a source without particles: the leptons bring their
    isolation (n_objects, 3); no particle rows."""
    n = len(ele_off) - 1
    status = np.zeros(n, np.int8)
    lep_index = np.full(n, -1, np.int64)
    lep_is_ele = np.zeros(n, np.bool_)
    lep_iso = np.zeros((n, 3))
    counts = np.zeros((n, 3), np.int32)
    ele_sum = ele_iso[:, 0] + ele_iso[:, 1] + ele_iso[:, 2]
    mu_sum = mu_iso[:, 0] + mu_iso[:, 1] + mu_iso[:, 2]
    for e in range(n):
        ie = _first_given(ele_off[e], ele_off[e + 1], ele_pt, ele_sum)
        im = _first_given(mu_off[e], mu_off[e + 1], mu_pt, mu_sum)
        if ie < 0 and im < 0:
            status[e] = NO_ISOLATED_LEPTON
        elif ie >= 0 and (im < 0 or ele_pt[ie] >= mu_pt[im]):  # the larger pT wins, as with particles
            lep_index[e], lep_is_ele[e], lep_iso[e] = ie, True, ele_iso[ie]
        else:
            lep_index[e], lep_iso[e] = im, mu_iso[im]
    return status, lep_index, lep_is_ele, lep_iso, counts


@numba.njit(cache=True)
def _lepton_isolations(lep_off, lep_pt, lep_eta, lep_phi, trk_off, trk_pt, trk_eta, trk_phi, pho_off, pho_et, pho_eta,
                       pho_phi, neu_off, neu_et, neu_eta, neu_phi, own_dr, match_own):  # fmt: skip
    out = np.zeros((len(lep_pt), 3))
    for e in range(len(lep_off) - 1):
        tmap = _particle_map(trk_off[e], trk_off[e + 1], trk_pt, trk_eta, trk_phi, schema.TRACK_MAP_MIN_PT)
        gmap = _particle_map(pho_off[e], pho_off[e + 1], pho_et, pho_eta, pho_phi, schema.PHOTON_MAP_MIN_ET)
        nmap = _particle_map(neu_off[e], neu_off[e + 1], neu_et, neu_eta, neu_phi, schema.NEUTRAL_MAP_MIN_ET)
        for i in range(lep_off[e], lep_off[e + 1]):
            own = 1.0
            if match_own:
                own = _own_share(
                    lep_eta[i], lep_phi[i], lep_pt[i], trk_off[e], trk_off[e + 1], trk_pt, trk_eta, trk_phi, own_dr
                )
            out[i, 0], out[i, 1], out[i, 2] = _isolation(lep_eta[i], lep_phi[i], lep_pt[i], own, tmap, gmap, nmap)
    return out


def lepton_isolations(chunk: EventChunk, role: str) -> np.ndarray:
    """(n_leptons, 3): the charged, photon and neutral isolation the selection
    computes for every electron or muon (``role``) of a chunk with particles,
    passing or not: what tells why an event was rejected, and what is
    compared with CMS's own ``pfRelIso03`` on real files."""
    if not chunk.particle_content:
        raise SettingsError("a chunk without particles carries its leptons' isolation; there is none to compute")
    lep, trk, pho, neu = getattr(chunk, role), chunk.tracks, chunk.photons, chunk.neutral_hadrons
    return _lepton_isolations(
        lep.offsets, lep["pt"], lep["eta"], lep["phi"], trk.offsets, trk["pt"], trk["eta"], trk["phi"], pho.offsets,
        pho["et"], pho["eta"], pho["phi"], neu.offsets, neu["et"], neu["eta"], neu["phi"], chunk.own_track_max_dr,
        chunk.match_own_track,
    )  # fmt: skip


def _select_from_particles(chunk: EventChunk):
    trk, pho, neu, ele, mu = chunk.tracks, chunk.photons, chunk.neutral_hadrons, chunk.electrons, chunk.muons
    return _select(
        trk.offsets,
        trk["pt"],
        trk["eta"],
        trk["phi"],
        pho.offsets,
        pho["et"],
        pho["eta"],
        pho["phi"],
        neu.offsets,
        neu["et"],
        neu["eta"],
        neu["phi"],
        ele.offsets,
        ele["pt"],
        ele["eta"],
        ele["phi"],
        mu.offsets,
        mu["pt"],
        mu["eta"],
        mu["phi"],
        chunk.own_track_max_dr,
        chunk.match_own_track,
    )


def _select_given_isolation(ele, mu):
    def iso(c):
        return np.stack([c["iso_ch"], c["iso_gamma"], c["iso_neu"]], axis=1).reshape(-1, 3)

    return _select_given(ele.offsets, ele["pt"], iso(ele), mu.offsets, mu["pt"], iso(mu))


# The kernel handles photons and neutral hadrons in one loop with one threshold.
assert schema.PHOTON_MAP_MIN_ET == schema.NEUTRAL_MAP_MIN_ET


def compute_features(
    chunk: EventChunk, llf_columns: Sequence[str] = schema.LLF_COLUMNS, hlf_columns: Sequence[str] = schema.HLF_COLUMNS
) -> ChunkFeatures:
    """Apply the selection and build LLF and HLF for a chunk (docs/spec.md steps 1–3).

    ``chunk`` holds the neutral collections of the events, whichever source
    read them. The LLF and HLF columns come in the order of ``llf_columns`` and
    ``hlf_columns``, which must each name every column of the schema once
    (a ``SettingsError`` says which do not).
    """
    col = column_index(llf_columns, schema.LLF_COLUMNS, "LLF")
    hcol = column_index(hlf_columns, schema.HLF_COLUMNS, "HLF")
    trk, pho, neu = chunk.tracks, chunk.photons, chunk.neutral_hadrons
    ele, mu, jet = chunk.electrons, chunk.muons, chunk.jets
    status, lep_index, lep_is_ele, lep_iso, counts = (
        _select_from_particles(chunk) if chunk.particle_content else _select_given_isolation(ele, mu)
    )
    rows = np.where(status == PASSED, 1 + counts.sum(axis=1), 0)
    row_offsets = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(rows, out=row_offsets[1:])
    llf, hlf = _build(
        status,
        lep_index,
        lep_is_ele,
        lep_iso,
        counts,
        row_offsets,
        trk.offsets,
        trk["pt"],
        trk["eta"],
        trk["phi"],
        trk["pid"],
        trk["x"],
        trk["y"],
        trk["z"],
        pho.offsets,
        pho["et"],
        pho["eta"],
        pho["phi"],
        neu.offsets,
        neu["et"],
        neu["eta"],
        neu["phi"],
        ele["pt"],
        ele["eta"],
        ele["phi"],
        ele["charge"],
        mu["pt"],
        mu["eta"],
        mu["phi"],
        mu["charge"],
        jet.offsets,
        jet["pt"],
        jet["eta"],
        jet["btag"],
        chunk.met,
        chunk.met_phi,
        chunk.own_track_max_dr,
        col,
        hcol,
    )
    return ChunkFeatures(
        status=status,
        hlf=hlf,
        llf=llf,
        llf_offsets=row_offsets,
        group_counts=counts,
        llf_columns=tuple(llf_columns),
        hlf_columns=tuple(hlf_columns),
    )


def dense_llf(llf: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Expand compact LLF rows (CSR) into the (n, 801, 19) matrix, zero-padded."""
    n = len(offsets) - 1
    out = np.zeros((n, schema.LLF_ROWS, schema.LLF_FEATURES), np.float32)
    lengths = np.diff(offsets)
    event_of_row = np.repeat(np.arange(n), lengths)
    row_in_event = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
    out[event_of_row, row_in_event] = llf
    return out
