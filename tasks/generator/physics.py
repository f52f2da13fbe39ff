"""Physics of the generated samples: one event of each class as Delphes-like
reconstructed objects. See GENERATOR.md (docs/generator.md) for the targets.

Not a simulation: a parametrised picture in which the classes differ the way
the real ones do. What the 14 HLF summarise (lepton, MET, jets, b-tags) and
what they do not (jet constituents, displaced b-decay tracks, activity around
the lepton, soft jets below 30 GeV, pileup vertices) are both modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tasks.generator import kinematics as kin

M_W, GAMMA_W = 80.4, 2.1
M_TOP, GAMMA_TOP = 172.5, 1.4
M_B = 4.8
TRACKER_ETA = 2.5
CALO_ETA = 4.0
PID_CHARGED_HADRONS = np.array([211, 321, 2212])
PID_CHARGED_WEIGHTS = np.array([0.80, 0.12, 0.08])
BTAG_EFFICIENCY = {"b": 0.70, "c": 0.15, "q": 0.01, "g": 0.01}


@dataclass
class Event:
    """Reconstructed objects of one event, accumulated as lists of columns."""

    z0: float  # primary-vertex z, mm
    tracks: list[np.ndarray] = field(default_factory=list)  # rows: pt, eta, phi, pid, x, y, z
    photons: list[np.ndarray] = field(default_factory=list)  # rows: et, eta, phi
    neutrals: list[np.ndarray] = field(default_factory=list)
    electrons: list[tuple[float, float, float, int]] = field(default_factory=list)
    muons: list[tuple[float, float, float, int]] = field(default_factory=list)
    jets: list[tuple[float, float, float, int]] = field(default_factory=list)
    invisible: np.ndarray = field(default_factory=lambda: np.zeros(2))  # Σ neutrino (px, py)
    mismeasured: np.ndarray = field(default_factory=lambda: np.zeros(2))  # Σ (true − reco) jet (px, py)
    visible_et: float = 0.0

    def add_particles(self, pt, eta, phi, kind, vertex=None) -> None:
        """Add particles of kind 0 charged, 1 photon, 2 neutral hadron.

        ``vertex`` holds the generator and ``xyz(mask)``, the production
        points of the particles selected by ``mask``.

        Charged particles outside the tracker reach the calorimeter as
        neutral-hadron deposits; anything beyond the calorimeter is lost.
        """
        pt, eta, phi, kind = (np.atleast_1d(np.asarray(a, dtype=float)) for a in (pt, eta, phi, kind))
        phi = kin.wrap_phi(phi)
        inside = np.abs(eta) < CALO_ETA
        kind = np.where((kind == 0) & (np.abs(eta) >= TRACKER_ETA), 2, kind)
        self.visible_et += float(pt[inside].sum())
        charged = inside & (kind == 0)
        if charged.any():
            n = int(charged.sum())
            rng_pid = vertex["rng"]
            pid = rng_pid.choice(PID_CHARGED_HADRONS, n, p=PID_CHARGED_WEIGHTS) * rng_pid.choice([-1, 1], n)
            x, y, z = vertex["xyz"](charged)
            self.tracks.append(np.stack([pt[charged], eta[charged], phi[charged], pid, x, y, z], axis=1))
        for k, store in ((1, self.photons), (2, self.neutrals)):
            sel = inside & (kind == k)
            if sel.any():
                store.append(np.stack([pt[sel], eta[sel], phi[sel]], axis=1))


class EventFactory:
    """Builds events of each class from one random generator."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    # --- shared pieces -----------------------------------------------------
    def _prompt_vertex(self, ev: Event):
        rng = self.rng

        def xyz(mask):
            n = int(np.sum(mask))
            return rng.normal(0, 0.012, n), rng.normal(0, 0.012, n), ev.z0 + rng.normal(0, 0.04, n)

        return {"rng": rng, "xyz": xyz}

    def _displaced_vertex(self, ev: Event, p: np.ndarray, ctau_mm: float):
        """A decay vertex along ``p`` after an exponential flight (B or D hadron)."""
        rng = self.rng
        m = 5.3 if ctau_mm > 0.3 else 1.9
        length = rng.exponential(ctau_mm) * float(np.linalg.norm(p[1:])) / m
        direction = p[1:] / np.linalg.norm(p[1:])
        point = length * direction

        def xyz(mask):
            n = int(np.sum(mask))
            return (
                point[0] + rng.normal(0, 0.02, n),
                point[1] + rng.normal(0, 0.02, n),
                ev.z0 + point[2] + rng.normal(0, 0.05, n),
            )

        return {"rng": rng, "xyz": xyz}

    def soft_activity(self, ev: Event, scale: float) -> None:
        """Underlying event at the primary vertex, and pileup at other vertices."""
        rng = self.rng
        n = rng.poisson([22 * scale, 14 * scale, 9 * scale])
        for kind, count, mean_pt, eta_max in (
            (0, n[0], 0.8, TRACKER_ETA),
            (1, n[1], 1.1, CALO_ETA),
            (2, n[2], 1.4, CALO_ETA),
        ):
            ev.add_particles(
                0.2 + rng.exponential(mean_pt, count),
                rng.uniform(-eta_max, eta_max, count),
                rng.uniform(-math.pi, math.pi, count),
                np.full(count, kind),
                self._prompt_vertex(ev),
            )
        # Pileup: soft collisions at other vertices along the beam line; their
        # tracks point back to a z far from the primary vertex.
        n_pileup = rng.poisson(rng.uniform(15, 70))
        vertex_z = rng.normal(0, 45.0, n_pileup)
        for kind, mean_n, mean_pt, eta_max in (
            (0, 8.5, 0.6, TRACKER_ETA),
            (1, 4.5, 0.9, CALO_ETA),
            (2, 4.5, 1.3, CALO_ETA),
        ):
            per_vertex = rng.poisson(mean_n, n_pileup)
            z = np.repeat(vertex_z, per_vertex)
            count = len(z)

            def xyz(mask, z=z):
                k = int(mask.sum())
                return rng.normal(0, 0.012, k), rng.normal(0, 0.012, k), z[mask] + rng.normal(0, 0.04, k)

            ev.add_particles(
                0.15 + rng.exponential(mean_pt, count),
                rng.uniform(-eta_max, eta_max, count),
                rng.uniform(-math.pi, math.pi, count),
                np.full(count, kind),
                {"rng": rng, "xyz": xyz},
            )

    def jet(
        self, ev: Event, p: np.ndarray, flavour: str, semileptonic: bool | None = None
    ) -> tuple[float, float, float] | None:
        """Fragment a parton into particles and a reconstructed jet.

        Returns (pt, eta, phi) of a heavy-flavour lepton when the hadron decayed
        semileptonically (its particles are added here), else None.
        """
        rng = self.rng
        pt, eta, phi = kin.pt_eta_phi(p)
        if pt < 1.0 or abs(eta) > CALO_ETA + 1:
            return None
        lepton = None
        if flavour in "bc" and semileptonic is None:
            semileptonic = rng.uniform() < (0.21 if flavour == "b" else 0.10)
        carried = pt
        if semileptonic:
            # b → c ℓ ν: the lepton and neutrino take part of the jet's momentum.
            z_lep = rng.beta(2.0, 4.0)
            z_nu = (1 - z_lep) * rng.uniform(0.1, 0.4)
            lpt = z_lep * pt
            leta = eta + rng.normal(0, 0.06)
            lphi = phi + rng.normal(0, 0.06)
            lepton = (lpt, leta, float(kin.wrap_phi(lphi)))
            ev.invisible += z_nu * pt * np.array([math.cos(phi), math.sin(phi)])
            carried = pt * (1 - z_lep - z_nu)
        self.fragment(ev, carried, eta, phi, flavour, p)
        # Reconstructed jet: the visible spray (lepton included), smeared.
        visible = carried + (lepton[0] if lepton else 0.0)
        resolution = 0.05 + 0.9 / math.sqrt(max(visible, 1.0))
        reco = visible * max(rng.normal(1.0, resolution), 0.3)
        ev.mismeasured += (visible - reco) * np.array([math.cos(phi), math.sin(phi)])
        if reco > 20.0 and abs(eta) < 4.7:
            btag = int(abs(eta) < TRACKER_ETA and rng.uniform() < BTAG_EFFICIENCY[flavour])
            ev.jets.append((reco, eta + rng.normal(0, 0.02), float(kin.wrap_phi(phi + rng.normal(0, 0.02))), btag))
        return lepton

    def fragment(self, ev: Event, pt: float, eta: float, phi: float, flavour: str, p: np.ndarray) -> None:
        """A collimated spray: few hard particles near the axis, many soft ones around."""
        rng = self.rng
        mean_n = 3.0 + 6.0 * math.log(max(pt, 5.0) / 5.0)
        mean_n *= {"g": 1.45, "b": 1.2, "c": 1.1}.get(flavour, 1.0)
        n = max(2, rng.poisson(mean_n))
        z = rng.dirichlet(np.full(n, 0.45))
        pts = z * pt
        spread = 0.015 + 0.16 / np.sqrt(1.0 + pts)
        if flavour == "g":
            spread *= 1.3
        etas = eta + rng.normal(0, spread)
        phis = phi + rng.normal(0, spread)
        kind = rng.choice(3, n, p=[0.62, 0.26, 0.12])
        prompt = self._prompt_vertex(ev)
        if flavour in "bc":
            # The hardest charged particles come from the displaced heavy-hadron decay.
            charged = np.flatnonzero(kind == 0)
            hardest = charged[np.argsort(-pts[charged])][: rng.integers(2, 6)]
            decay = np.zeros(n, bool)
            decay[hardest] = True
            displaced = self._displaced_vertex(ev, p, 0.45 if flavour == "b" else 0.15)
            ev.add_particles(pts[decay], etas[decay], phis[decay], kind[decay], displaced)
            ev.add_particles(pts[~decay], etas[~decay], phis[~decay], kind[~decay], prompt)
        else:
            ev.add_particles(pts, etas, phis, kind, prompt)

    def isolated_lepton(self, ev: Event, p: np.ndarray, flavour: str, charge: int) -> None:
        """A prompt electron or muon: its track, the reconstructed object, maybe an FSR photon."""
        rng = self.rng
        pt, eta, phi = kin.pt_eta_phi(p)
        self._lepton_object(ev, pt, eta, phi, flavour, charge, self._prompt_vertex(ev))
        if rng.uniform() < 0.15:
            ev.add_particles(
                pt * rng.uniform(0.01, 0.08), eta + rng.normal(0, 0.04), phi + rng.normal(0, 0.04), 1, None
            )

    def _lepton_object(self, ev: Event, pt, eta, phi, flavour, charge, vertex) -> None:
        if abs(eta) >= TRACKER_ETA:
            return
        pid = (-11 if flavour == "e" else -13) * charge  # e⁻ is PID 11
        x, y, z = vertex["xyz"](np.ones(1, bool))
        ev.tracks.append(np.array([[pt, eta, phi, pid, x[0], y[0], z[0]]]))
        ev.visible_et += pt
        efficiency = 0.90 if flavour == "e" else 0.95
        if pt > 10.0 and self.rng.uniform() < efficiency:
            (ev.electrons if flavour == "e" else ev.muons).append((pt, eta, phi, charge))

    def leptonic_w(self, ev: Event, w: np.ndarray, charge: int) -> None:
        flavour = "e" if self.rng.uniform() < 0.5 else "mu"
        lep, nu = kin.two_body_decay(w, 0.0, 0.0, self.rng)
        ev.invisible += nu[1:3]
        self.isolated_lepton(ev, lep, flavour, charge)

    def hf_lepton(self, ev: Event, lepton: tuple[float, float, float] | None) -> None:
        if lepton is None:
            return
        flavour = "e" if self.rng.uniform() < 0.5 else "mu"
        charge = int(self.rng.choice([-1, 1]))
        self._lepton_object(ev, *lepton, flavour, charge, self._prompt_vertex(ev))

    def isr_jets(self, ev: Event, mean: float, pt_scale: float) -> np.ndarray:
        """Extra radiation jets; returns their summed transverse momentum."""
        rng = self.rng
        total = np.zeros(2)
        for _ in range(rng.poisson(mean)):
            pt = 15.0 + rng.exponential(pt_scale)
            p = kin.from_pt_eta_phi(pt, rng.normal(0, 1.8), rng.uniform(-math.pi, math.pi))
            flavour = rng.choice(["g", "q", "c", "b"], p=[0.6, 0.33, 0.05, 0.02])
            self.hf_lepton(ev, self.jet(ev, p, flavour))
            total += p[1:3]
        return total

    def finish(self, ev: Event) -> Event:
        """Missing transverse energy: neutrinos, jet mismeasurement, resolution."""
        sigma = 0.55 * math.sqrt(ev.visible_et + 25.0)
        ev.invisible += ev.mismeasured + self.rng.normal(0, sigma, 2)
        return ev

    def _new_event(self) -> Event:
        return Event(z0=float(self.rng.normal(0, 45.0)))

    # --- the three classes -------------------------------------------------
    def wjets(self) -> Event:
        """W(→ℓν) + jets: one isolated lepton, a neutrino, few mostly light jets."""
        rng = self.rng
        ev = self._new_event()
        recoil = self.isr_jets(ev, mean=0.85, pt_scale=28.0)
        m = kin.breit_wigner(rng, M_W, GAMMA_W, 60.0, 100.0)
        w_pt = -recoil + rng.normal(0, 6.0, 2)
        w = kin.from_pt_y_phi_m(float(np.hypot(*w_pt)), rng.normal(0, 1.7), math.atan2(w_pt[1], w_pt[0]), m)
        self.leptonic_w(ev, w, 1 if rng.uniform() < 0.6 else -1)  # W⁺ dominates at the LHC
        self.soft_activity(ev, scale=1.0)
        return self.finish(ev)

    def ttbar(self) -> Event:
        """tt̄ → (bℓν)(bqq′), 15 % dileptonic: b jets, many jets, MET, busy events."""
        rng = self.rng
        ev = self._new_event()
        recoil = self.isr_jets(ev, mean=1.2, pt_scale=40.0)
        t_pt, t_phi = rng.gamma(2.2, 55.0), rng.uniform(-math.pi, math.pi)
        p1 = t_pt * np.array([math.cos(t_phi), math.sin(t_phi)])
        p2 = -p1 - recoil
        leptonic = [True, rng.uniform() < 0.15]
        charge = int(rng.choice([-1, 1]))
        for i, pt_vec in enumerate((p1, p2)):
            mt = kin.breit_wigner(rng, M_TOP, GAMMA_TOP, 160.0, 185.0)
            top = kin.from_pt_y_phi_m(
                float(np.hypot(*pt_vec)), rng.normal(0, 0.9), math.atan2(pt_vec[1], pt_vec[0]), mt
            )
            mw = kin.breit_wigner(rng, M_W, GAMMA_W, 60.0, 100.0)
            b, w = kin.two_body_decay(top, M_B, mw, rng)
            self.hf_lepton(ev, self.jet(ev, b, "b"))
            if leptonic[i]:
                self.leptonic_w(ev, w, charge if i == 0 else -charge)
            else:
                q1, q2 = kin.two_body_decay(w, 0.0, 0.0, rng)
                self.jet(ev, q1, "c" if rng.uniform() < 0.5 else "q")
                self.jet(ev, q2, "q")
        self.soft_activity(ev, scale=1.5)
        return self.finish(ev)

    def qcd(self) -> Event:
        """Heavy-flavour dijets whose lepton comes from a b or c decay inside a jet.

        Generated with the lepton-bearing jet drawn so that the lepton pT falls
        steeply from near the trigger threshold, as a lepton-filtered sample does.
        """
        rng = self.rng
        ev = self._new_event()
        recoil = self.isr_jets(ev, mean=1.5, pt_scale=30.0)
        flavour = "b" if rng.uniform() < 0.65 else "c"
        # Fraction of the jet the lepton carries: the few isolated ones are hard.
        z_lep = rng.beta(5.0, 1.6)
        z_nu = (1 - z_lep) * rng.uniform(0.15, 0.5)
        lep_pt = 17.0 + rng.exponential(11.0)
        jet_pt = lep_pt / z_lep
        eta1, phi1 = rng.normal(0, 1.5), rng.uniform(-math.pi, math.pi)
        p1 = kin.from_pt_eta_phi(jet_pt, eta1, phi1)
        # The lepton near the axis, the rest of the jet around it.
        leta, lphi = eta1 + rng.normal(0, 0.05), phi1 + rng.normal(0, 0.05)
        charge = int(rng.choice([-1, 1]))
        lepton_flavour = "e" if rng.uniform() < 0.5 else "mu"
        self._lepton_object(
            ev,
            lep_pt,
            leta,
            float(kin.wrap_phi(lphi)),
            lepton_flavour,
            charge,
            self._displaced_vertex(ev, p1, 0.45 if flavour == "b" else 0.15),
        )
        ev.invisible += z_nu * jet_pt * np.array([math.cos(phi1), math.sin(phi1)])
        rest = kin.from_pt_eta_phi(jet_pt * (1 - z_lep - z_nu), eta1, phi1)
        self.jet(ev, rest, flavour, semileptonic=False)
        # The recoiling parton: the partner heavy quark or a light parton.
        other = rng.choice([flavour, "g", "q"], p=[0.5, 0.3, 0.2])
        p2_pt = -(p1[1:3]) - recoil + rng.normal(0, 8.0, 2)
        p2 = kin.from_pt_eta_phi(float(np.hypot(*p2_pt)), rng.normal(0, 1.5), math.atan2(p2_pt[1], p2_pt[0]))
        self.hf_lepton(ev, self.jet(ev, p2, str(other)))
        self.soft_activity(ev, scale=1.1)
        return self.finish(ev)
