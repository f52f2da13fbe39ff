"""The Delphes event source: Delphes-schema ROOT files, read as
``data_configs/delphes.yaml`` says (tasks.events.rootfile does the reading).

Both namings are accepted: real Delphes files (``EFlowTrack.PT`` under the
``EFlowTrack`` branch) and files written by uproot (``EFlowTrack_PT``), in a
TTree or in an RNTuple (ROOT's columnar format, uproot 5.7's default).
The generator (tasks.generator) writes files of this schema.
"""

from __future__ import annotations

from tasks.events.collections import ROLES
from tasks.events.data_config import DataConfig, default_config_path, load_data_config
from tasks.events.rootfile import RootSource, branch_candidates

__all__ = ["COLLECTIONS", "TREE_NAME", "DelphesSource", "branch_candidates"]


def _paper_card() -> DataConfig:
    return load_data_config(str(default_config_path("delphes")))


TREE_NAME = "Delphes"

COLLECTIONS: dict[str, tuple[str, ...]] = {
    spec.collections[0]: tuple(branch for _, branch in spec.fields) for spec in _paper_card().roles.values()
}
"""The paper card's branches (the default data config's first collections):
what the generator writes. Reading goes by the data config."""

assert _paper_card().tree == TREE_NAME
assert {role: tuple(f for f, _ in spec.fields) for role, spec in _paper_card().roles.items() if role != "met"} == ROLES


class DelphesSource(RootSource):
    """Delphes-schema ROOT files, read as their data config says (default: ``data_configs/delphes.yaml``)."""

    kind = "delphes"

    def __init__(self, config: DataConfig | None = None):
        super().__init__(config or _paper_card())
