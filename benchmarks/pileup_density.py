"""What one pileup interaction adds to the isolation maps and MET, through the
generator's detector response: minimum-bias events overlaid on an empty event.

    .venv/bin/python benchmarks/pileup_density.py [--pileup 30] [--events 40]

Prints and writes benchmarks/results/pileup_density.json: per interaction, the
pT density (GeV per unit η × φ, |η| < 2.5) of tracks above 0.5 GeV, photons
and neutral hadrons above 1 GeV (the kernel's isolation maps), the same in a
ΔR < 0.3 cone, the tracks per interaction, and the mean MET of the overlay."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tasks.generator.detector import Detector
from tasks.generator.pythia import MinBiasPool, Particles

RESULTS = Path(__file__).parent / "results" / "pileup_density.json"
MAPS = {"tracks": ("tracks", 0.5), "photons": ("photons", 1.0), "neutral_hadrons": ("neutrals", 1.0)}
AREA = 2 * 2.5 * 2 * np.pi  # |η| < 2.5, full φ
CONE = np.pi * 0.3**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pileup", type=float, default=30)
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    pool, detector = MinBiasPool(args.seed, 200), Detector(rng)
    empty = Particles(np.zeros(0, np.int64), *(np.zeros(0) for _ in range(7)), heavy=np.zeros((0, 4)))
    density = {name: [] for name in MAPS}
    tracks, met = [], []
    for _ in range(args.events):
        particles, k = pool.overlay(empty, args.pileup, rng)
        ev = detector.reconstruct(particles)
        for name, (field, threshold) in MAPS.items():
            rows = np.concatenate(getattr(ev, field)) if getattr(ev, field) else np.zeros((0, 3))
            kept = (rows[:, 0] > threshold) & (np.abs(rows[:, 1]) < 2.5)
            density[name].append(rows[kept, 0].sum() / AREA / max(k, 1))
            if name == "tracks":
                tracks.append(kept.sum() / max(k, 1))
        met.append(float(np.hypot(*ev.invisible)))
    out = {
        "pileup": args.pileup,
        "events": args.events,
        "density_gev_per_unit_area": {n: round(float(np.mean(v)), 4) for n, v in density.items()},
        "cone_0p3_gev": {n: round(float(np.mean(v)) * CONE, 4) for n, v in density.items()},
        "tracks_per_interaction": round(float(np.mean(tracks)), 2),
        "mean_met_gev": round(float(np.mean(met)), 2),
    }
    print(json.dumps(out, indent=2))
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
