"""A fast detector response in the spirit of Delphes' CMS card: Pythia's final
particles (tasks.generator.pythia) → the reconstructed objects of the paper's
card (EFlowTrack, EFlowPhoton, EFlowNeutralHadron, Electron, MuonTight, Jet,
MissingET), as a ``physics.Event`` the generator's writer already knows.

Every parameter is a module constant, with where its value comes from
("card": Delphes 3.5 ``cards/delphes_card_CMS.tcl``, rounded; "CMS": the
detector papers). Simplifications against Delphes, on purpose: no magnetic
field propagation (particles fly straight from their production vertex), a
charged hadron's calorimeter deposit is replaced by its track (perfect
particle-flow linking; a neutral deposit's 2σ significance is judged on its
own energy, and it sits at its cell's centre), and electrons and muons are
reconstructed from their own track, so that a lepton's track in EFlowTrack has exactly its pT, η, φ
(the kernel's own-track rule, docs/spec.md). Pileup is mitigated for jets
only, as Delphes' pileup card does (charged pileup tracks away from the
primary vertex leave the jets' input, and ρ·A is subtracted from each jet):
EFlowTrack, the photons and neutral hadrons, the isolation and MET keep
every object.
"""

from __future__ import annotations

import numpy as np

from tasks.generator.physics import Event
from tasks.generator.pythia import INVISIBLE, Particles

# --- tracking (card: {ChargedHadron,Electron,Muon}TrackingEfficiency, ...MomentumSmearing) ---
# Efficiency rows: (|η| up to, ((pT above, efficiency), ...)); 0 below the first pT and outside.
TRACKER_ETA = 2.5
TRACK_MIN_PT = 0.1
TRACK_EFFICIENCY = {
    "hadron": ((1.5, ((0.1, 0.70), (1.0, 0.95))), (2.5, ((0.1, 0.60), (1.0, 0.85)))),
    "electron": ((1.5, ((0.1, 0.73), (1.0, 0.95), (100.0, 0.99))), (2.5, ((0.1, 0.50), (1.0, 0.83), (100.0, 0.90)))),
    "muon": ((1.5, ((0.1, 0.75), (1.0, 0.99))), (2.5, ((0.1, 0.70), (1.0, 0.98)))),
}
# Resolution rows: σpT/pT = a ⊕ b·pT (|η| up to, a, b /GeV); electrons' is the card's track-and-ECAL one.
TRACK_RESOLUTION = {
    "hadron": ((0.5, 0.01, 1.5e-4), (1.5, 0.015, 2.5e-4), (2.5, 0.025, 5.5e-4)),
    "electron": ((0.5, 0.03, 1.3e-3), (1.5, 0.05, 1.7e-3), (2.5, 0.15, 3.1e-3)),
    "muon": ((0.5, 0.01, 1.0e-4), (1.5, 0.015, 1.5e-4), (2.5, 0.025, 3.5e-4)),
}
VERTEX_RESOLUTION_MM = (0.02, 0.02, 0.05)  # x, y, z of a track's vertex (CMS tracker: 10–50 µm)
# --- calorimeters (card: ECal/HCal resolution formulas, EtaPhiBins; thresholds) ---
ECAL_ETA, HCAL_ETA = 3.0, 5.0
ECAL_CELL, HCAL_CELL = 0.02, 0.087  # η × φ cell size (CMS: ECAL crystals 0.0174, HCAL towers 0.087)
# Resolutions, σE in GeV (card's ResolutionFormula): ECAL σ = f(η)·√((0.008 E)² + 0.11² E + 0.40²),
# f = 1 + 0.64 η² in the barrel (|η| ≤ 1.5), 2.16 + 5.6 (|η| − 2)² in the endcaps (≤ 2.5), and
# √((0.107 E)² + 2.08² E) beyond; HCAL σ = √((0.05 E)² + 1.5² E) (|η| ≤ 3), √((0.13 E)² + 2.7² E) beyond.
ECAL_CORE, ECAL_FORWARD = (0.008, 0.11, 0.40), (0.107, 2.08, 0.0)  # (c, s, n): √((c E)² + s² E + n²)
HCAL_CORE, HCAL_FORWARD = (0.05, 1.5, 0.0), (0.13, 2.7, 0.0)
ECAL_THRESHOLD, HCAL_THRESHOLD = 0.5, 1.0  # GeV (card: EnergyMin)
SIGNIFICANCE_MIN = 2.0  # a deposit is kept only above 2σ of its own energy (card: EnergySignificanceMin)
# --- leptons (card: ElectronEfficiency, MuonEfficiency) -----------------------
ELECTRON_EFFICIENCY = ((1.5, ((10.0, 0.95),)), (2.5, ((10.0, 0.85),)))
MUON_EFFICIENCY = ((2.4, ((10.0, 0.95),)),)
# --- jets and b-tagging (card: FastJetFinder, BTagging) ------------------------
JET_R, JET_MIN_PT = 0.4, 20.0
BTAG_EFFICIENCY = {"b": 0.70, "c": 0.15, "light": 0.01}  # the paper card's medium working point
HEAVY_HADRON_MIN_PT = 5.0
# --- pileup mitigation of jets (card, PileUp variant: TrackPileUpSubtractor, ----
# FastJetFinder ComputeRho, JetPileUpSubtractor). Jets only: EFlowTrack, the
# isolation and MET keep every object, as the paper's selection saw them.
CHS_DZ_MM = 0.1  # a pileup track this far in z from the primary vertex leaves the jets' input (ZVertexResolution)
RHO_ETA, RHO_CELL = 2.5, 0.55  # ρ: the median pT density of η × φ patches of this size (fastjet's grid median)
JET_AREA = np.pi * JET_R**2  # an anti-kT jet's area, about πR²; ρ·A is subtracted from its pT


def _eta_bands(eta, rows):
    """(mask of the particles in the row's |η| band, the rest of the row), for
    rows that start with their band's upper |η| edge, in rising order."""
    lower = 0.0
    for eta_max, *values in rows:
        yield (np.abs(eta) >= lower) & (np.abs(eta) < eta_max), values
        lower = eta_max


def _table(eta, pt, rows) -> np.ndarray:
    """Efficiency per particle from rows (|η| up to, ((pT above, efficiency), ...)); 0 elsewhere."""
    out = np.zeros(len(eta))
    for band, (steps,) in _eta_bands(eta, rows):
        for edge, efficiency in steps:
            out[band & (pt > edge)] = efficiency
    return out


def _species(apid: np.ndarray) -> dict[str, np.ndarray]:
    """Masks of the tracking species: electrons, muons, and everything else charged."""
    electron, muon = apid == 11, apid == 13
    return {"electron": electron, "muon": muon, "hadron": ~(electron | muon)}


def _track_efficiency(apid, eta, pt) -> np.ndarray:
    out = np.zeros(len(eta))
    for species, mask in _species(apid).items():
        out[mask] = _table(eta[mask], pt[mask], TRACK_EFFICIENCY[species])
    return out


def _track_resolution(apid, eta, pt) -> np.ndarray:
    """σpT/pT of each track (the tracker's |η| range only)."""
    out = np.zeros(len(eta))
    for species, mask in _species(apid).items():
        for band, (a, b) in _eta_bands(eta, TRACK_RESOLUTION[species]):
            out[mask & band] = np.hypot(a, b * pt[mask & band])
    return out


def _wrap(phi):
    return (phi + np.pi) % (2 * np.pi) - np.pi


class Detector:
    """The response of one detector, with its own random stream (seeded per file)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def reconstruct(self, particles: Particles) -> Event:
        rng = self.rng
        pid = particles.pid
        apid = np.abs(pid)
        pt, eta = particles.pt, particles.eta
        phi = particles.phi
        charge = particles.charge
        visible = ~np.isin(apid, INVISIBLE)
        ev = Event(z0=particles.primary[2])

        # Tracks: charged particles in the tracker, with efficiency and resolution.
        charged = visible & (charge != 0) & (np.abs(eta) < TRACKER_ETA) & (pt > TRACK_MIN_PT)
        found = charged & (rng.random(len(pt)) < _track_efficiency(apid, eta, pt))
        i = np.flatnonzero(found)
        track_pt = pt[i] * np.maximum(1 + rng.normal(0, 1, len(i)) * _track_resolution(apid[i], eta[i], pt[i]), 0.05)
        vertex = [getattr(particles, c)[i] + rng.normal(0, s, len(i)) for c, s in zip("xyz", VERTEX_RESOLUTION_MM,
                                                                                    strict=True)]  # fmt: skip
        ev.tracks.append(np.column_stack([track_pt, eta[i], phi[i], pid[i], *vertex]))

        # Leptons from their own track (so the track in EFlowTrack is exactly the lepton).
        for code, table, store in ((11, ELECTRON_EFFICIENCY, ev.electrons), (13, MUON_EFFICIENCY, ev.muons)):
            mine = apid[i] == code
            keep = mine & (rng.random(len(i)) < _table(eta[i], track_pt, table))
            for k in np.flatnonzero(keep):
                store.append((float(track_pt[k]), float(eta[i][k]), float(phi[i][k]), int(-np.sign(pid[i][k]))))

        # Calorimeters: neutral particles (and charged ones outside the tracker) in cells.
        missed_charged = visible & (charge != 0) & ~charged & (apid != 13)
        em = visible & ((apid == 22) | ((apid == 11) & ~charged)) & (np.abs(eta) < ECAL_ETA)
        hadronic = visible & (charge == 0) & (apid != 22) & (np.abs(eta) < HCAL_ETA)
        hadronic |= missed_charged & (apid != 11) & (np.abs(eta) < HCAL_ETA)
        for mask, cell, reach, resolution, threshold, store in (
            (em, ECAL_CELL, ECAL_ETA, ecal_sigma, ECAL_THRESHOLD, ev.photons),
            (hadronic, HCAL_CELL, HCAL_ETA, hcal_sigma, HCAL_THRESHOLD, ev.neutrals),
        ):
            deposits = _cells(particles.e[mask], eta[mask], phi[mask], cell, reach)
            if len(deposits):
                true_energy, c_eta, c_phi = deposits.T
                energy = _log_normal(true_energy, resolution(true_energy, c_eta), rng)
                et = energy / np.cosh(c_eta)
                # As the card: the threshold and the significance of the measured energy.
                kept = (energy > threshold) & (energy > SIGNIFICANCE_MIN * resolution(energy, c_eta))
                store.append(np.column_stack([et[kept], c_eta[kept], c_phi[kept]]))

        # Jets on the particle-flow objects without pileup tracks, less ρ·A;
        # b-tag by matching heavy hadrons; MET from every PF object.
        tracks = np.column_stack([track_pt, eta[i], phi[i]])
        neutral = np.concatenate([np.concatenate(s) if s else np.zeros((0, 3)) for s in (ev.photons, ev.neutrals)])
        flow = np.concatenate([tracks, neutral])
        pileup_track = particles.is_pileup()[i] & (np.abs(vertex[2] - particles.primary[2]) > CHS_DZ_MM)
        jet_input = np.concatenate([tracks[~pileup_track], neutral])
        rho = _rho(jet_input)
        for raw_pt, jet_eta, jet_phi in _anti_kt(jet_input):
            jet_pt = raw_pt - rho * JET_AREA
            if jet_pt < JET_MIN_PT:
                continue
            flavour = _flavour(jet_eta, jet_phi, particles.heavy)
            tagged = rng.random() < BTAG_EFFICIENCY[flavour]
            ev.jets.append((jet_pt, jet_eta, jet_phi, int(tagged)))
        px = -(flow[:, 0] * np.cos(flow[:, 2])).sum()
        py = -(flow[:, 0] * np.sin(flow[:, 2])).sum()
        ev.invisible = np.array([px, py])  # the writer's MET is this vector: −Σ of the PF objects
        return ev


def _sigma(energy, terms):
    c, s, n = terms
    return np.sqrt((c * energy) ** 2 + s**2 * energy + n**2)


def ecal_sigma(energy, eta):
    """The ECAL's σE (GeV) for deposits of ``energy`` at ``eta`` (card's formula)."""
    a = np.abs(eta)
    shape = np.where(a <= 1.5, 1 + 0.64 * a**2, 2.16 + 5.6 * (a - 2) ** 2)
    return np.where(a <= 2.5, shape * _sigma(energy, ECAL_CORE), _sigma(energy, ECAL_FORWARD))


def hcal_sigma(energy, eta):
    """The HCAL's σE (GeV) for deposits of ``energy`` at ``eta`` (card's formula)."""
    return np.where(np.abs(eta) <= 3.0, _sigma(energy, HCAL_CORE), _sigma(energy, HCAL_FORWARD))


def _log_normal(mean, sigma, rng):
    """Smeared energies with that mean and σ, never negative (the card's
    calorimeters smear log-normally)."""
    b = np.sqrt(np.log1p((sigma / np.maximum(mean, 1e-9)) ** 2))
    return np.exp(np.log(np.maximum(mean, 1e-9)) - 0.5 * b**2 + b * rng.normal(0, 1, len(mean)))


def _cells(energy, eta, phi, size, eta_max) -> np.ndarray:
    """Deposits summed per (η, φ) cell: (energy, cell-centre η, cell-centre φ).
    The outermost cells are cut at ±``eta_max``, and a cut cell's centre is
    that of its part inside: no deposit lies outside the calorimeter."""
    if len(energy) == 0:
        return np.zeros((0, 3))
    n_phi = int(round(2 * np.pi / size))
    ie = np.floor(eta / size).astype(np.int64)
    ip = np.floor((phi + np.pi) / (2 * np.pi) * n_phi).astype(np.int64) % n_phi
    key = ie * n_phi + ip
    cells, inverse = np.unique(key, return_inverse=True)
    total = np.bincount(inverse, weights=energy)
    lower = np.floor_divide(cells, n_phi) * size
    c_eta = 0.5 * (np.maximum(lower, -eta_max) + np.minimum(lower + size, eta_max))
    c_phi = _wrap((np.mod(cells, n_phi) + 0.5) * (2 * np.pi / n_phi) - np.pi)
    return np.column_stack([total, c_eta, c_phi])


def _rho(flow: np.ndarray) -> float:
    """The pileup pT density (GeV per unit η × φ): the median over patches of
    |η| < RHO_ETA, robust against the hard jets."""
    n_eta, n_phi = int(round(2 * RHO_ETA / RHO_CELL)), int(round(2 * np.pi / RHO_CELL))
    pt, eta, phi = flow.T if len(flow) else (np.zeros(0),) * 3
    inside = np.abs(eta) < RHO_ETA
    ie = np.minimum(((eta[inside] + RHO_ETA) / (2 * RHO_ETA) * n_eta).astype(np.int64), n_eta - 1)
    ip = np.minimum(((phi[inside] + np.pi) / (2 * np.pi) * n_phi).astype(np.int64), n_phi - 1)
    total = np.bincount(ie * n_phi + ip, weights=pt[inside], minlength=n_eta * n_phi)
    return float(np.median(total) / ((2 * RHO_ETA / n_eta) * (2 * np.pi / n_phi)))


def _anti_kt(flow: np.ndarray) -> list[tuple[float, float, float]]:
    """Anti-kT R = 0.4 jets (fastjet) of massless PF objects (pt, η, φ), pT > JET_MIN_PT.

    fastjet's array interface: the objects go to C++ as one array, not as a
    Python PseudoJet each (that took 40 % of the detector's time with pileup)."""
    import awkward as ak
    import fastjet

    if len(flow) == 0:
        return []
    pt, eta, phi = flow.T
    objects = ak.zip({"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "E": pt * np.cosh(eta)})
    sequence = fastjet.ClusterSequence(objects, fastjet.JetDefinition(fastjet.antikt_algorithm, JET_R))
    jets = sequence.inclusive_jets(min_pt=JET_MIN_PT)
    px, py, pz = (ak.to_numpy(jets[c]).astype(np.float64) for c in ("px", "py", "pz"))
    jet_pt = np.hypot(px, py)
    order = np.argsort(-jet_pt, kind="stable")  # fastjet's order is not pT; Delphes writes jets by pT
    jet_eta = np.arcsinh(pz / np.maximum(jet_pt, 1e-12))
    return [(float(jet_pt[k]), float(jet_eta[k]), float(np.arctan2(py[k], px[k]))) for k in order]


def _flavour(eta: float, phi: float, heavy: np.ndarray) -> str:
    """b if a b hadron above HEAVY_HADRON_MIN_PT lies within R of the jet, else c, else light."""
    if len(heavy) == 0:
        return "light"
    pid, px, py, pz = heavy.T
    pt = np.hypot(px, py)
    ok = pt > HEAVY_HADRON_MIN_PT
    h_eta = np.arcsinh(np.divide(pz, pt, out=np.zeros_like(pt), where=pt > 0))
    dr = np.hypot(h_eta - eta, _wrap(np.arctan2(py, px) - phi))
    near = ok & (dr < JET_R)
    apid = np.abs(pid).astype(np.int64)
    quark = np.where((apid // 1000) % 10 > 0, (apid // 1000) % 10, (apid // 100) % 10)
    if np.any(near & (quark == 5)):
        return "b"
    return "c" if np.any(near & (quark == 4)) else "light"
