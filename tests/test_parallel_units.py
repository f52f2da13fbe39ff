"""The suite's units of work on the xdist workers (tests/conftest.py)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import LONGEST_FIRST, SHARED_UNITS, unit_of

TESTS = Path(__file__).resolve().parent
MODULES = {p.stem for p in TESTS.glob("test_*.py")}


def test_the_ordered_and_shared_units_name_modules_that_exist():
    assert set(SHARED_UNITS) <= MODULES
    assert set(LONGEST_FIRST) <= MODULES | set(SHARED_UNITS.values())
    assert len(LONGEST_FIRST) == len(set(LONGEST_FIRST))


def test_every_module_on_the_local_cluster_is_in_its_one_unit():
    """The cluster is a session fixture: a module using it outside the shared
    unit would start a second cluster on the other worker."""
    users = {
        p.stem for p in TESTS.glob("test_*.py") if re.search(r"def test_\w+\([^)]*\blocal_cluster\b", p.read_text())
    }
    assert users and {unit_of(f"tests/{m}.py::t") for m in users} == {"local-cluster"}, users
    assert unit_of("tests/test_models.py::test_x[gru]") == "test_models"
