"""Pythia 8 events of the three classes at 13 TeV, at generator level (the
fast detector response, tasks.generator.detector, makes them Delphes-schema
events; ``topo generate --generator pythia8`` does both).

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

In QCD the weak decays of b and c hadrons are **forced semileptonic** (to e
or μ; ``FORCED_SEMILEPTONIC``): a lepton from a heavy-flavour decay is what a
QCD event needs to pass a single-lepton selection, and without forcing 4 in
5 b hadrons and most c hadrons decay without one. Pythia's cross section
ignores forcing; ``HardEvents.weights`` carries each event's weight, the
product of the forced branching fractions of the hadrons that decayed in it,
for any use that needs the natural rate (the benchmark reports its mean).
Every event has both its b (or c) hadrons decaying semileptonically, where
nature has mostly one: the selected QCD events carry more soft leptons and
neutrinos (MET) than a natural lepton-triggered sample. docs/benchmarks.md
measures what that costs.

Every class goes through a **generator-level filter** before anything costly
(pileup, the detector) is done with the event: a final e or μ with
pT > ``FILTER_PT`` and |η| < ``FILTER_ETA`` whose relative isolation in the
hard event alone (ΔR < 0.3; tracks above 0.5 GeV, neutrals above 1 GeV, as
the selection counts them) is below ``FILTER_ISOLATION``. Pileup only adds to
the isolation the selection sees, but the detector can take a lot away (lost
tracks, a lepton measured high), so the filter's cut is far looser than the
selection's: it drops ~2 % of the QCD events the selection would keep
(docs/benchmarks.md; the events it keeps are checked in tests/test_pythia.py),
and no lepton below ``FILTER_PT`` was selected in 285 QCD events that had one.

Underlying event (multiparton interactions) is Pythia's default (Monash
tune). Every hard event gets its own primary vertex, drawn in the luminous
region (``BEAM_SPOT_*``) after Pythia. Pileup is overlaid from a pool of
minimum-bias events (``MinBiasPool``): Poisson(μ) of them per event, each
moved to its own vertex in the luminous region.

A generator is seeded per file (``seed``): the same class, seed and options
give the same events.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from tasks.core import schema
from tasks.core.errors import SettingsError

ENERGY_GEV = 13000.0
FILTER_PT = 20.0  # below the 23 GeV cut, so that detector resolution can lift a lepton over it
FILTER_ETA = 2.5  # the tracker's acceptance
# Far above the selection's 0.45: track inefficiency and the electrons' pT
# resolution (15 % in the endcaps) move a lepton's isolation down a long way.
# At 0.5 the filter lost 12 of 119 selected QCD events, at 1.0 it loses 2
# (pileup 30, the cut lifted; docs/benchmarks.md), for no measurable change in
# selected events/s: the parton level and hadronization dominate the cost.
FILTER_ISOLATION = 1.0
# The selection's isolation (docs/spec.md, step 1): its cone and what it counts.
ISOLATION_CONE = schema.ISOLATION_CONE
ISOLATION_TRACK_MIN_PT = schema.TRACK_MAP_MIN_PT
ISOLATION_NEUTRAL_MIN_PT = min(schema.PHOTON_MAP_MIN_ET, schema.NEUTRAL_MAP_MIN_ET)
BEAM_SPOT_XY_MM = 0.01  # transverse size of the luminous region (LHC Run 2: ~10 µm)
BEAM_SPOT_Z_MM = 40.0  # its length (LHC Run 2: σz ≈ 35–45 mm)
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

FORCED_SEMILEPTONIC: dict[str, tuple[int, ...]] = {
    # B0, B+, Bs, Λb, Ξb0, Ξb−, Ωb; D+, D0, Ds, Λc, Ξc+, Ξc0, Ωc: the weakly decaying b and c hadrons
    "qcd": (511, 521, 531, 5122, 5232, 5132, 5332, 411, 421, 431, 4122, 4232, 4132, 4332),
}
"""The hadrons whose decays are restricted to channels with an e or μ, per class."""

LEPTONS_FROM_DECAYS = frozenset({"qcd"})
"""The classes whose filter leptons come from hadron decays only, so that the
filter's first look skips the parton-level part of the record (~40 % of it;
a QCD lepton from the parton showers' photon splitting is soft and rare)."""

HADRONIZATIONS: dict[str, int] = {"qcd": 5}
"""Hadronizations tried per parton-level event, per class (1 elsewhere). Keeping
the first pass of k tries weights a parton-level event by 1 − (1 − p)^k
instead of k·p (p: its chance to pass in one try): events whose decays pass
easily are under-represented, by at most (k − 1)·p/2 for small p. The
benchmark measures p and the speed this buys."""

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
    # Pythia's consistency check of every event record costs a quarter of a
    # hadronization and changes no event (the same files, checked): QCD
    # hadronizes ~25 times per event written.
    "Check:event = off",
)

CHARGE_SIGN = {211: 1, 321: 1, 2212: 1, 11: -1, 13: -1, 15: -1, 3222: 1, 3112: -1, 3312: -1, 3334: -1}
"""The sign of the charge of the particle (not the antiparticle) of the long-lived charged species."""
INVISIBLE = (12, 14, 16)


@dataclass
class Particles:
    """Final-state particles of one event (or an overlay of several), as arrays.

    ``x, y, z`` are production vertices in mm (displaced for the decay products
    of long-lived hadrons); ``heavy`` lists the b and c hadrons (id, px, py, pz)
    of the hard event, for b-tagging by matching; ``pileup`` marks the
    particles of overlaid minimum-bias events (the truth Delphes' pileup
    subtraction uses too). ``primary`` is the hard event's vertex (x, y, z).
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
    pileup: np.ndarray | None = None  # bool per particle; None: none is
    primary: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __len__(self) -> int:
        return len(self.pid)

    @property
    def pt(self) -> np.ndarray:
        return np.hypot(self.px, self.py)

    @property
    def phi(self) -> np.ndarray:
        return np.arctan2(self.py, self.px)

    @property
    def charge(self) -> np.ndarray:
        """The sign of each particle's electric charge (0 for neutral ones)."""
        a = np.abs(self.pid)
        out = np.zeros(len(a), np.int8)
        for code, q in CHARGE_SIGN.items():
            out[a == code] = q
        return out * np.sign(self.pid).astype(np.int8)

    @property
    def eta(self) -> np.ndarray:
        p = np.sqrt(self.px**2 + self.py**2 + self.pz**2)
        return np.arctanh(np.divide(self.pz, p, out=np.zeros_like(p), where=p > 0).clip(-1 + 1e-12, 1 - 1e-12))

    def shifted(self, dx: float, dy: float, dz: float) -> Particles:
        x, y, z = self.primary
        return Particles(self.pid, self.px, self.py, self.pz, self.e, self.x + dx, self.y + dy, self.z + dz,
                         self.heavy, self.pileup, (x + dx, y + dy, z + dz))  # fmt: skip

    def is_pileup(self) -> np.ndarray:
        return np.zeros(len(self), bool) if self.pileup is None else self.pileup

    @staticmethod
    def overlay(hard: Particles, pileup: list[Particles]) -> Particles:
        """``hard`` with the ``pileup`` events' particles added, marked as pileup."""
        parts = [hard, *pileup]
        fields = ("pid", "px", "py", "pz", "e", "x", "y", "z")
        joined = {f: np.concatenate([getattr(p, f) for p in parts]) for f in fields}
        marks = np.concatenate([hard.is_pileup(), *(np.ones(len(p), bool) for p in pileup)])
        return Particles(**joined, heavy=hard.heavy, pileup=marks, primary=hard.primary)


def _forcing(hadrons: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(line for h in hadrons for line in (f"{h}:onMode = off", f"{h}:onIfAny = 11 13"))


def _open_fractions(pythia, hadrons: tuple[int, ...]) -> dict[int, float]:
    """Σ of the branching fractions of the channels left open, per hadron."""
    out = {}
    for h in hadrons:
        entry = pythia.particleData.particleDataEntryPtr(h)
        out[h] = sum(entry.channel(i).bRatio() for i in range(entry.sizeChannels()) if entry.channel(i).onMode() > 0)
    return out


def _pythia(settings: tuple[str, ...], seed: int):
    os.environ.setdefault("PYTHIA8DATA", "")  # the wheel finds its own data when this is empty
    import pythia8mc

    if not 0 <= seed <= MAX_SEED:
        raise SettingsError(f"a Pythia seed is between 0 and {MAX_SEED}, got {seed}")
    pythia = pythia8mc.Pythia("", False)
    for line in COMMON + settings + (f"Random:seed = {seed}",):
        if not pythia.readString(line):
            raise SettingsError(f"Pythia refused the setting {line!r}")
    if not pythia.init():
        raise SettingsError("Pythia failed to initialise (see its log)")
    return pythia


def _next(pythia) -> None:
    """Generate the next event (Pythia retries internally; a rare failure is skipped)."""
    for _ in range(100):
        if pythia.next():
            return
    raise RuntimeError("Pythia failed to generate 100 events in a row (see its log)")


def _lepton_candidates(event, start: int = 0) -> list[int]:
    """The final e and μ in the filter's window among the entries from ``start``:
    the cheap first look at every event. A loop over the record costs ~0.8 µs
    an entry, against ~3.5 ms for turning the whole event into arrays
    (``nextBatch``), so only the rare candidates of QCD become arrays."""
    found = []
    for i in range(start, event.size()):
        q = event[i]
        if q.idAbs() in (11, 13) and q.isFinal() and q.pT() > FILTER_PT and abs(q.eta()) < FILTER_ETA:
            found.append(i)
    return found


def _may_be_isolated(event, leptons: list[int]) -> bool:
    """The second look, at the candidates: whether one may pass the isolation
    cut, from Pythia's own ΔR (a call per final particle, where the arrays take
    eleven): 7 in 10 QCD candidates fail here, before the arrays are made. A
    hair looser than ``filter_isolation``, which decides: never rejects what
    it would keep."""
    cone, cut = ISOLATION_CONE * (1 + 1e-6), FILTER_ISOLATION + 1e-6
    around = dict.fromkeys(leptons, 0.0)
    for j in range(event.size()):
        q = event[j]
        if not q.isFinal() or not q.isVisible():
            continue
        for lepton in leptons:
            if j != lepton and event.REtaPhi(lepton, j) < cone:
                if q.isCharged():
                    counted = q.pT() > ISOLATION_TRACK_MIN_PT and abs(q.eta()) < FILTER_ETA
                else:
                    counted = q.pT() > ISOLATION_NEUTRAL_MIN_PT
                around[lepton] += q.pT() if counted else 0.0
    return any(around[lepton] < cut * event[lepton].pT() for lepton in leptons)


def _is_heavy_flavour(code: int) -> bool:
    """A b or c hadron: mesons 4xx/5xx, baryons 4xxx/5xxx."""
    return (code // 100) % 10 in (4, 5) or (code // 1000) % 10 in (4, 5)


def _record(event) -> np.ndarray:
    """The event's final particles and its b and c hadrons, as rows (id, status,
    daughter1, daughter2, px, py, pz, e, x, y, z), in mm and GeV: the other
    entries (partons, decayed light hadrons) are never read, and skipping them
    halves the cost of the ~11 calls a row takes."""
    rows = [
        (
            q.id(),
            q.status(),
            q.daughter1(),
            q.daughter2(),
            q.px(),
            q.py(),
            q.pz(),
            q.e(),
            q.xProd(),
            q.yProd(),
            q.zProd(),
        )
        for q in event
        if q.isFinal() or _is_heavy_flavour(q.idAbs())
    ]
    return np.array(rows, np.float64).reshape(-1, 11)


def _final_particles(record: np.ndarray, with_heavy: bool) -> Particles:
    """The final particles of one event record (``_record``), and its b and c hadrons."""
    pid = record[:, 0].astype(np.int64)
    final = record[:, 1] > 0
    heavy = np.zeros((0, 4))
    if with_heavy:
        a = np.abs(pid)
        is_heavy = np.isin((a // 100) % 10, (4, 5)) | np.isin((a // 1000) % 10, (4, 5))  # as _is_heavy_flavour
        heavy = np.column_stack([pid[is_heavy], record[is_heavy, 4:7]])
    px, py, pz, e, x, y, z = (np.ascontiguousarray(record[final, k]) for k in range(4, 11))
    return Particles(pid=pid[final].astype(np.int32), px=px, py=py, pz=pz, e=e, x=x, y=y, z=z, heavy=heavy)


def filter_isolation(particles: Particles) -> float:
    """The smallest hard-event relative isolation of the leptons in the filter's
    pT and η window (ChPFIso + GammaPFIso + NeuPFIso, docs/spec.md, without
    detector or pileup); infinity when there is no such lepton."""
    pid = np.abs(particles.pid)
    pt, eta, phi, charge = particles.pt, particles.eta, particles.phi, particles.charge
    leptons = np.flatnonzero(np.isin(pid, (11, 13)) & (pt > FILTER_PT) & (np.abs(eta) < FILTER_ETA))
    if len(leptons) == 0:
        return float("inf")
    visible = ~np.isin(pid, INVISIBLE)
    tracks = visible & (charge != 0) & (pt > ISOLATION_TRACK_MIN_PT) & (np.abs(eta) < FILTER_ETA)
    neutrals = visible & (charge == 0) & (pt > ISOLATION_NEUTRAL_MIN_PT)
    counted = tracks | neutrals
    e, f, w = eta[counted], phi[counted], pt[counted]
    dr = np.hypot(e[None, :] - eta[leptons, None], (f[None, :] - phi[leptons, None] + np.pi) % (2 * np.pi) - np.pi)
    around = np.where(dr < ISOLATION_CONE, w[None, :], 0.0).sum(axis=1) - pt[leptons]  # not the lepton itself
    return float(np.min(around / pt[leptons]))


def passes_lepton_filter(particles: Particles) -> bool:
    """A final electron or muon with pT > FILTER_PT inside |η| < FILTER_ETA, and
    hard-event isolation below FILTER_ISOLATION."""
    return filter_isolation(particles) < FILTER_ISOLATION


def _forced_weight(record: np.ndarray, fractions: dict[int, float]) -> float:
    """Π of the open branching fractions of the forced hadrons that decayed in
    the event (a weak decay has two or more daughters; a B0 that oscillated
    appears twice, once with its single daughter, and counts once)."""
    if not fractions:
        return 1.0
    pid = np.abs(record[:, 0]).astype(np.int64)
    decayed = (record[:, 1] < 0) & (record[:, 3] > record[:, 2])
    weight = 1.0
    for h in pid[decayed & np.isin(pid, list(fractions))]:
        weight *= fractions[int(h)]
    return weight


class HardEvents:
    """Filtered hard events of one class, seeded: ``take(n)`` gives the next
    ``n`` that pass. ``generated`` counts the parton-level events they took,
    ``hadronized`` the hadronizations, ``weights`` the forced-decay weight of
    each event kept.

    Each parton-level event (hard process, showers and the underlying event)
    is hadronized and decayed up to ``HADRONIZATIONS[sample]`` times, and the
    first pass is kept (Pythia's repeated hadronization, as in its example
    main15): the underlying event is 90 % of Pythia's time, the decays decide
    whether a QCD event has its lepton. The primary vertex is drawn here,
    in the luminous region, and moves every particle."""

    def __init__(self, sample: str, seed: int):
        if sample not in PROCESSES:
            raise SettingsError(f"unknown class {sample!r}; choose one of {', '.join(PROCESSES)}")
        self.sample = sample
        forced = FORCED_SEMILEPTONIC.get(sample, ())
        self.pythia = _pythia(PROCESSES[sample] + _forcing(forced) + ("HadronLevel:all = off",), seed)
        self.fractions = _open_fractions(self.pythia, forced)
        self.tries = HADRONIZATIONS.get(sample, 1)
        self.rng = np.random.default_rng([seed, *sample.encode()])  # the beam spot: a stream apart from Pythia's
        self.decay_leptons = sample in LEPTONS_FROM_DECAYS
        self.parton_size = 0  # entries of the parton-level event, where hadronization starts appending
        self.generated = self.hadronized = 0
        self.weights: list[float] = []

    def take(self, n: int) -> list[Particles]:
        import pythia8mc

        kept: list[Particles] = []
        while len(kept) < n:
            parton = self.next_parton_level()
            for attempt in range(self.tries):
                if attempt:
                    self.pythia.event = pythia8mc.Event(parton)
                passed = self.hadronize()
                if passed is not None:
                    particles, record = passed
                    vertex = self.rng.normal(0.0, (BEAM_SPOT_XY_MM, BEAM_SPOT_XY_MM, BEAM_SPOT_Z_MM))
                    kept.append(particles.shifted(*vertex))
                    self.weights.append(_forced_weight(record, self.fractions))
                    break
        return kept

    def next_parton_level(self):
        """Generate the next parton-level event into ``pythia.event``; a copy to
        hadronize again from when this class tries more than once, else None."""
        import pythia8mc

        _next(self.pythia)
        self.generated += 1
        self.parton_size = self.pythia.event.size()
        return pythia8mc.Event(self.pythia.event) if self.tries > 1 else None

    def hadronize(self) -> tuple[Particles, np.ndarray] | None:
        """Hadronize and decay the parton-level event in ``pythia.event``; its
        final particles and record if they pass the filter, else None."""
        if not self.pythia.forceHadronLevel(False):  # junctions were found at parton level
            return None
        self.hadronized += 1
        leptons = _lepton_candidates(self.pythia.event, self.parton_size if self.decay_leptons else 0)
        if not leptons or not _may_be_isolated(self.pythia.event, leptons):
            return None
        record = _record(self.pythia.event)
        particles = _final_particles(record, with_heavy=True)
        return (particles, record) if passes_lepton_filter(particles) else None


class MinBiasPool:
    """A pool of minimum-bias events, generated once (``size``) and reused:
    a fresh 30-event overlay costs ~12× the hard event. Each overlaid event is
    moved to its own vertex drawn in the luminous region, so a reused event
    never sits where it sat before."""

    def __init__(self, seed: int, size: int = 200):
        if size < 1:
            raise SettingsError(f"the minimum-bias pool needs at least one event, got {size}")
        pythia = _pythia(MINBIAS, seed)
        self.events = []
        for _ in range(size):
            _next(pythia)
            self.events.append(_final_particles(_record(pythia.event), with_heavy=False))

    def overlay(self, hard: Particles, mean: float, rng: np.random.Generator) -> tuple[Particles, int]:
        """``hard`` with Poisson(``mean``) pool events added; and how many."""
        if mean < 0:
            raise SettingsError(f"the mean pileup must be at least 0, got {mean}")
        k = int(rng.poisson(mean))
        picks = rng.integers(0, len(self.events), size=k)
        shifts = rng.normal(0.0, (BEAM_SPOT_XY_MM, BEAM_SPOT_XY_MM, BEAM_SPOT_Z_MM), size=(k, 3))
        pileup = [self.events[i].shifted(*shift) for i, shift in zip(picks, shifts, strict=True)]
        return Particles.overlay(hard, pileup), k
