"""The neutral form of a chunk of events, whatever file format it came from.

Every event source (tasks.events.sources) turns its files into an
``EventChunk``: one ``Collection`` per physics role, named and laid out the
same way for every format, so that the feature kernel knows nothing of branch
names. Units are those of the detector simulation (Delphes, CMS NanoAOD):
GeV for momenta and energies, radians for angles, millimetres for positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.core import schema


@dataclass
class Collection:
    """One collection of a chunk as CSR: ``offsets`` (n_events + 1, int64,
    starting at 0) and one flat float64 array per field, objects of event
    ``e`` at ``offsets[e]:offsets[e + 1]``."""

    offsets: np.ndarray
    fields: dict[str, np.ndarray]

    def __getitem__(self, field: str) -> np.ndarray:
        return self.fields[field]


ROLES: dict[str, tuple[str, ...]] = {
    "tracks": ("pt", "eta", "phi", "pid", "x", "y", "z"),
    "photons": ("et", "eta", "phi"),
    "neutral_hadrons": ("et", "eta", "phi"),
    "electrons": ("pt", "eta", "phi", "charge"),
    "muons": ("pt", "eta", "phi", "charge"),
    "jets": ("pt", "eta", "phi", "btag"),
}
"""The fields of each collection of an ``EventChunk``; see the class for their meaning."""


@dataclass
class EventChunk:
    """The events [start, stop) of one file, by physics role.

    Fields of the collections (float64, whatever the file stored):

    - ``pt``: transverse momentum, GeV; ``et``: transverse energy, GeV
    - ``eta``: pseudorapidity (no unit); ``phi``: azimuth, rad, in [-π, π]
    - ``pid``: PDG particle id of a track, signed: its sign is the charge's
    - ``x``, ``y``, ``z``: a track's vertex position, mm
    - ``charge``: electric charge, units of e (±1)
    - ``btag``: b-tag flag of a jet, > 0 when tagged
    """

    tracks: Collection
    """Charged particle-flow candidates: pt, eta, phi, pid, x, y, z."""
    photons: Collection
    """Particle-flow photons: et, eta, phi."""
    neutral_hadrons: Collection
    """Particle-flow neutral hadrons: et, eta, phi."""
    electrons: Collection
    """Reconstructed electrons, in decreasing pt: pt, eta, phi, charge."""
    muons: Collection
    """Reconstructed (tight) muons, in decreasing pt: pt, eta, phi, charge."""
    jets: Collection
    """Reconstructed jets: pt, eta, phi, btag."""
    met: np.ndarray
    """Missing transverse energy per event, GeV (n_events,); NaN where a file has none."""
    met_phi: np.ndarray
    """Azimuth of the missing transverse energy per event, rad (n_events,)."""
    particle_content: bool = True
    """False for a source without particles (plain NanoAOD): the particle
    collections are empty, and the leptons carry their isolation as the
    fields ``iso_ch``, ``iso_gamma`` and ``iso_neu``."""
    own_track_max_dr: float = schema.OWN_TRACK_MAX_DR
    """A track this close (ΔR) to the selected lepton is its own track (the source's config says)."""
    match_own_track: bool = False
    """Whether the lepton's own track is looked up among the tracks for its
    charged isolation (CMS files) instead of taken to be there at its pT (Delphes)."""

    def __len__(self) -> int:
        return len(self.met)

    def collections(self) -> dict[str, Collection]:
        """The collections by role name, in the order of ``ROLES``."""
        return {role: getattr(self, role) for role in ROLES}
