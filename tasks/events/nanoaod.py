"""The CMS sources: PFNano (NanoAOD with the particle-flow candidates,
``PFCands_*``) and plain NanoAOD (no candidates), read as
``data_configs/pfnano.yaml`` and ``data_configs/nanoaod.yaml`` say
(tasks.events.rootfile does the reading; docs/spec.md has the mapping).

PFNano's candidates split by |pdgId| into the kernel's tracks (211, 11, 13),
photons (22) and neutral hadrons (130, and 1, 2: the forward calorimeter's
hadronic and electromagnetic deposits), so its events get the same 801 × 19
LLF and 14 HLF as Delphes'. Plain NanoAOD has no particles: its leptons bring
their isolation (``pfRelIso03_*``), and its events get the HLF and the lepton
row only (``particle_content: false``).
"""

from __future__ import annotations

from tasks.events.data_config import DataConfig, default_config_path, load_data_config
from tasks.events.rootfile import RootSource

TREE_NAME = "Events"
CANDIDATES = "PFCands"
"""The collection whose presence tells PFNano from plain NanoAOD."""


class PFNanoSource(RootSource):
    """CMS PFNano files: NanoAOD with ``PFCands_*``."""

    kind = "pfnano"

    def __init__(self, config: DataConfig | None = None):
        super().__init__(config or load_data_config(str(default_config_path(self.kind))))


class NanoAODSource(RootSource):
    """Plain CMS NanoAOD files: leptons, jets and MET, no particle-flow candidates."""

    kind = "nanoaod"

    def __init__(self, config: DataConfig | None = None):
        super().__init__(config or load_data_config(str(default_config_path(self.kind))))
