"""Pythia 8 events of the three classes at 13 TeV, before any detector
(issue 16, step 1: the generator level; the fast detector response that turns
them into the Delphes schema is the next step, and ``topo generate`` does not
offer this generator until it exists).

- **W + jets**: qq̄′ → Wg and qg → Wq′, W → eν or μν (τ left out: its leptons
  are soft and rare above the cut, and the paper's W sample is ℓν).
- **tt̄**: gg, qq̄ → tt̄ with the W decaying as in nature; the lepton filter
  below keeps the semileptonic and dileptonic events at their natural ratio.
- **QCD**: bb̄ and cc̄ production (``HardQCD:hardbbbar``, ``hardccbar``) above
  ``qcd_pthat_min``: heavy-flavour-enriched, since a lepton-filtered QCD
  sample is mostly semileptonic b and c decays anyway and light-flavour
  multijets almost never give an isolated lepton above 23 GeV (6 in 10⁵
  events at pTHatMin 20, measured). The bias: the QCD class over-represents
  heavy flavour relative to inclusive multijets that pass the trigger
  selection; fair for a classifier sample because the selection requires a
  lepton, which in QCD comes mostly from heavy-flavour decays, and the
  classifier is trained on the selected events only.

Every class goes through a **generator-level lepton filter** (a final e or μ
with pT > ``FILTER_PT`` and |η| < ``FILTER_ETA``) before anything costly is
done with the event. Underlying event (multiparton interactions) is Pythia's
default (Monash tune); the beam spot comes from Pythia's vertex spread, so
every hard event has its own primary vertex. Pileup is overlaid from a pool
of minimum-bias events (``MinBiasPool``): Poisson(μ) of them per event, each
moved to its own vertex in the luminous region.

A generator is seeded per file (``seed``): the same class, seed and options
give the same events.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from tasks.core.errors import SettingsError

ENERGY_GEV = 13000.0
FILTER_PT = 20.0  # below the 23 GeV cut, so that detector resolution can lift a lepton over it
FILTER_ETA = 2.5  # the tracker's acceptance
BEAM_SPOT_XY_MM = 0.01  # transverse size of the luminous region (LHC Run 2: ~10 µm)
BEAM_SPOT_Z_MM = 40.0  # its length (LHC Run 2: σz ≈ 35–45 mm)
DEFAULT_PILEUP = 30.0  # mean minimum-bias interactions per crossing (LHC Run 2: 20–40)
MAX_SEED = 900_000_000  # Pythia's largest seed

PROCESSES: dict[str, tuple[str, ...]] = {
    "wjets": (
        "WeakBosonAndParton:qqbar2Wg = on",
        "WeakBosonAndParton:qg2Wq = on",
        "PhaseSpace:pTHatMin = 20.",
        "24:onMode = off",
        "24:onIfAny = 11 13",
    ),
    "ttbar": ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on"),
    "qcd": ("HardQCD:hardbbbar = on", "HardQCD:hardccbar = on", "PhaseSpace:pTHatMin = 40."),
}
"""The Pythia settings of each class's hard process."""

MINBIAS: tuple[str, ...] = ("SoftQCD:nonDiffractive = on",)

COMMON: tuple[str, ...] = (
    f"Beams:eCM = {ENERGY_GEV}",
    "Next:numberCount = 0",
    "Next:numberShowEvent = 0",
    "Next:numberShowInfo = 0",
    "Next:numberShowProcess = 0",
    "Init:showChangedSettings = off",
    "Init:showChangedParticleData = off",
    "Init:showProcesses = off",
    "Init:showMultipartonInteractions = off",
    "Print:quiet = on",
    "Random:setSeed = on",
)

HEAVY_HADRON_FLAVOUR = {5: "b", 4: "c"}


@dataclass
class Particles:
    """Final-state particles of one event (or an overlay of several), as arrays.

    ``x, y, z`` are production vertices in mm (displaced for the decay products
    of long-lived hadrons); ``heavy`` lists the b and c hadrons (id, px, py, pz)
    of the hard event, for b-tagging by matching.
    """

    pid: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    e: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    heavy: np.ndarray  # (n, 4): pdg id, px, py, pz

    def __len__(self) -> int:
        return len(self.pid)

    @property
    def pt(self) -> np.ndarray:
        return np.hypot(self.px, self.py)

    @property
    def eta(self) -> np.ndarray:
        p = np.sqrt(self.px**2 + self.py**2 + self.pz**2)
        return np.arctanh(np.divide(self.pz, p, out=np.zeros_like(p), where=p > 0).clip(-1 + 1e-12, 1 - 1e-12))

    def shifted(self, dx: float, dy: float, dz: float) -> Particles:
        return Particles(self.pid, self.px, self.py, self.pz, self.e, self.x + dx, self.y + dy, self.z + dz,
                         self.heavy)  # fmt: skip

    @staticmethod
    def concatenate(parts: list[Particles]) -> Particles:
        fields = ("pid", "px", "py", "pz", "e", "x", "y", "z")
        joined = {f: np.concatenate([getattr(p, f) for p in parts]) for f in fields}
        return Particles(**joined, heavy=parts[0].heavy)


def _pythia(settings: tuple[str, ...], seed: int, vertex_spread: bool):
    os.environ.setdefault("PYTHIA8DATA", "")  # the wheel finds its own data when this is empty
    import pythia8mc

    if not 0 <= seed <= MAX_SEED:
        raise SettingsError(f"a Pythia seed is between 0 and {MAX_SEED}, got {seed}")
    pythia = pythia8mc.Pythia("", False)
    lines = COMMON + settings + (f"Random:seed = {seed}",)
    if vertex_spread:
        lines += (
            "Beams:allowVertexSpread = on",
            f"Beams:sigmaVertexX = {BEAM_SPOT_XY_MM}",
            f"Beams:sigmaVertexY = {BEAM_SPOT_XY_MM}",
            f"Beams:sigmaVertexZ = {BEAM_SPOT_Z_MM}",
        )
    for line in lines:
        if not pythia.readString(line):
            raise SettingsError(f"Pythia refused the setting {line!r}")
    if not pythia.init():
        raise SettingsError("Pythia failed to initialise (see its log)")
    return pythia


def _final_particles(event, with_heavy: bool) -> Particles:
    """The final particles of one Pythia event record (``event``: a nextBatch entry)."""
    import awkward as ak

    prt = event["prt"]
    status = ak.to_numpy(prt["status"])
    pid = ak.to_numpy(prt["id"])
    final = status > 0
    p = prt["p"]
    vertex = prt["vProd"]

    def column(record, name, mask):
        values = ak.to_numpy(ak.fill_none(record[name], 0.0))
        return np.asarray(values[mask], np.float64)

    heavy = np.zeros((0, 4))
    if with_heavy:
        flavour = (np.abs(pid) // 100) % 10  # mesons 5xx, 4xx
        baryon = (np.abs(pid) // 1000) % 10  # baryons 5xxx, 4xxx
        is_heavy = np.isin(flavour, (4, 5)) | np.isin(baryon, (4, 5))
        heavy = np.column_stack([pid[is_heavy], *(column(p, c, is_heavy) for c in ("px", "py", "pz"))])
    return Particles(
        pid=pid[final].astype(np.int32),
        px=column(p, "px", final),
        py=column(p, "py", final),
        pz=column(p, "pz", final),
        e=column(p, "e", final),
        x=column(vertex, "px", final),  # vProd is (x, y, z, t) in mm in a Momentum4D record
        y=column(vertex, "py", final),
        z=column(vertex, "pz", final),
        heavy=heavy,
    )


def passes_lepton_filter(particles: Particles) -> bool:
    """A final electron or muon with pT > FILTER_PT inside |η| < FILTER_ETA."""
    lepton = np.isin(np.abs(particles.pid), (11, 13))
    if not lepton.any():
        return False
    return bool(np.any((particles.pt[lepton] > FILTER_PT) & (np.abs(particles.eta[lepton]) < FILTER_ETA)))


class HardEvents:
    """Lepton-filtered hard events of one class, seeded: ``take(n)`` gives the
    next ``n`` that pass, and how many were generated for them."""

    def __init__(self, sample: str, seed: int, batch: int = 50):
        if sample not in PROCESSES:
            raise SettingsError(f"unknown class {sample!r}; choose one of {', '.join(PROCESSES)}")
        self.sample, self.batch = sample, batch
        self.pythia = _pythia(PROCESSES[sample], seed, vertex_spread=True)
        self.generated = 0

    def take(self, n: int) -> list[Particles]:
        kept: list[Particles] = []
        while len(kept) < n:
            for event in self.pythia.nextBatch(self.batch):
                self.generated += 1
                particles = _final_particles(event, with_heavy=True)
                if passes_lepton_filter(particles):
                    kept.append(particles)
                    if len(kept) == n:
                        break
        return kept


class MinBiasPool:
    """A pool of minimum-bias events, generated once (``size``) and reused:
    a fresh 30-event overlay costs ~12× the hard event. Each overlaid event is
    moved to its own vertex drawn in the luminous region, so a reused event
    never sits where it sat before."""

    def __init__(self, seed: int, size: int = 200):
        if size < 1:
            raise SettingsError(f"the minimum-bias pool needs at least one event, got {size}")
        pythia = _pythia(MINBIAS, seed, vertex_spread=False)
        self.events = [_final_particles(e, with_heavy=False) for e in pythia.nextBatch(size)]

    def overlay(self, hard: Particles, mean: float, rng: np.random.Generator) -> tuple[Particles, int]:
        """``hard`` with Poisson(``mean``) pool events added; and how many."""
        if mean < 0:
            raise SettingsError(f"the mean pileup must be at least 0, got {mean}")
        k = int(rng.poisson(mean))
        picks = rng.integers(0, len(self.events), size=k)
        shifts = rng.normal(0.0, (BEAM_SPOT_XY_MM, BEAM_SPOT_XY_MM, BEAM_SPOT_Z_MM), size=(k, 3))
        parts = [hard] + [self.events[i].shifted(*shift) for i, shift in zip(picks, shifts, strict=True)]
        return Particles.concatenate(parts), k
