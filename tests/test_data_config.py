"""Data configs and real Delphes files: the input definition as YAML, the
standard Delphes cards found without options, what was chosen recorded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from tasks.core.errors import InputFileError, SettingsError
from tasks.events.data_config import default_config_path, load_data_config
from tasks.events.delphes import COLLECTIONS
from tasks.events.ingest import ingest
from tasks.events.kernel import PASSED, compute_features
from tasks.events.samples import Sample
from tasks.events.sources import get_source
from tests.support import reference

DATA = Path(__file__).resolve().parent / "data"
REAL_DELPHES = DATA / "zh_tag_1_delphes_events.root"  # an older card: muons in `Muon`, split TClonesArray
NO_KEYS = DATA / "coffea_bad_delphes.root"


def write_config(path, **changes):
    config = yaml.safe_load(default_config_path().read_text())
    for dotted, value in changes.items():
        node = config
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_the_default_config_is_the_papers_card_with_the_standard_muons_next():
    config = load_data_config()
    assert config.source == "delphes" and config.tree == "Delphes" and config.version == 1
    assert config.roles["muons"].collections == ("MuonTight", "Muon")
    # the generator writes the paper card's branches: the first collection of each role
    assert list(COLLECTIONS) == [
        "EFlowTrack",
        "EFlowPhoton",
        "EFlowNeutralHadron",
        "Electron",
        "MuonTight",
        "Jet",
        "MissingET",
    ]
    assert COLLECTIONS["EFlowTrack"] == ("PT", "Eta", "Phi", "PID", "X", "Y", "Z")


def test_a_real_delphes_file_reads_with_no_options_and_matches_the_reference():
    source = get_source()
    assert source.inspect(str(REAL_DELPHES)) == 100
    assert source.examine(str(REAL_DELPHES))[1]["muons"] == "Muon"
    chunk = source.read_chunk(str(REAL_DELPHES), 0, 100)
    assert 30 < np.diff(chunk.tracks.offsets).mean() < 40  # ~35 tracks an event, as the file's README says
    fast = compute_features(chunk)
    status, hlfs, llfs = reference.reference_features(chunk)
    np.testing.assert_array_equal(fast.status, status)
    passed = np.flatnonzero(status == PASSED)
    assert len(passed) >= 5  # Z h: few leptons above 23 GeV, but some
    for e in passed:
        np.testing.assert_allclose(fast.hlf[e], np.asarray(hlfs[e], np.float32), rtol=1e-5, atol=1e-6)
        rows = fast.llf[fast.llf_offsets[e] : fast.llf_offsets[e + 1]]
        np.testing.assert_allclose(rows, np.asarray(llfs[e], np.float32), rtol=1e-5, atol=1e-5)


def test_ingestion_records_the_config_and_each_files_layout_and_names_bad_files(
    tmp_path, dask_client, generated_sample
):
    generated = sorted(generated_sample.glob("ttbar/*.root"))[0]
    files = (str(REAL_DELPHES), str(NO_KEYS), str(generated))
    summary = ingest([Sample("ttbar", 1, files)], tmp_path / "events", dask_client, chunk=30)
    assert summary["bad_files"] == {
        str(NO_KEYS): "no known event layout: neither a 'Delphes' tree (Delphes) nor an 'Events' tree "
        "(CMS NanoAOD/PFNano); the file holds: nothing"
    }
    assert summary["source"] == "delphes" and summary["particle_content"] is True  # detected
    assert summary["layouts"][str(REAL_DELPHES)]["muons"] == "Muon"
    assert summary["layouts"][str(generated)]["muons"] == "MuonTight"
    assert summary["data_config"]["path"] == str(default_config_path())
    assert summary["data_config"]["roles"]["muons"]["collections"] == ["MuonTight", "Muon"]
    on_disk = json.loads((tmp_path / "events" / "_summary.json").read_text())
    assert on_disk["layouts"] == summary["layouts"] and on_disk["data_config"] == summary["data_config"]
    assert summary["files"][str(REAL_DELPHES)]["read"] == 100
    ids = pq.read_table(tmp_path / "events").column("event_id").to_pylist()
    assert any(i.startswith("ttbar/zh_tag_1_delphes_events.root:") for i in ids)


def test_a_config_that_matches_no_layout_names_the_role_and_the_names_tried(tmp_path, dask_client, generated_sample):
    only_tight = write_config(tmp_path / "tight.yaml", **{"roles.muons.collections": ["MuonTight"]})
    generated = sorted(generated_sample.glob("ttbar/*.root"))[0]
    with pytest.raises(InputFileError) as err:
        get_source("delphes", only_tight).inspect(str(REAL_DELPHES))
    assert str(REAL_DELPHES) in str(err.value) and "MuonTight.PT" in str(err.value)
    either = write_config(tmp_path / "either.yaml", **{"roles.muons.collections": ["MuonLoose", "MuonTight"]})
    with pytest.raises(InputFileError, match=r"muons \(MuonLoose.PT, .*; or MuonTight.PT"):
        get_source("delphes", either).inspect(str(REAL_DELPHES))
    # the other files are still processed
    summary = ingest([Sample("ttbar", 1, (str(REAL_DELPHES), str(generated)))], tmp_path / "ev", dask_client,
                     data_config=only_tight)  # fmt: skip
    assert list(summary["bad_files"]) == [str(REAL_DELPHES)] and summary["events_written"] > 0
    assert summary["data_config"]["path"] == only_tight


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"roles.jets": None}, "missing: jets"),
        (
            {"roles.photons.fields": {"et": "ET", "eta": "Eta"}},
            "roles.photons.fields must give the branch of each of et, eta, phi; missing: phi",
        ),
        ({"roles.muons.collections": []}, "roles.muons.collections must be a non-empty list"),
        ({"version": 2}, "version must be 1"),
        ({"tree": None}, "'tree' is missing"),
        ({"roles.muons.working_point": 0.5}, "roles.muons.working_point: only jets have a b-tag working point"),
        ({"roles.jets.vertex": {"d0": "D0", "dz": "DZ", "primary_vertex": "PV"}}, "only tracks have a vertex"),
        ({"roles.muons.isolation": {"charged": "a", "all": "b"}}, "only leptons of a source without particles"),
        ({"roles.muons.require": {"min": 1}}, "roles.muons.require must be a mapping of field, min"),
        ({"roles.tracks.select": {"field": "PID", "abs_in": ["pion"]}}, "abs_in must be a list of integers"),
        ({"particle_content": False}, "(particle_content is false); unknown: neutral_hadrons, photons, tracks"),
        ({"own_track_max_dr": -1}, "own_track_max_dr must be a positive number"),
    ],
)
def test_a_wrong_config_is_refused_naming_the_key(tmp_path, changes, message):
    path = write_config(tmp_path / "bad.yaml", **changes)
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        load_data_config(path)
    assert path in str(err.value)


def test_a_config_for_another_source_is_refused(tmp_path):
    path = write_config(tmp_path / "nano.yaml", source="nanoaod")
    with pytest.raises(SettingsError, match="is for source 'nanoaod', not 'delphes'"):
        get_source("delphes", path)


def test_topo_ingest_reads_standard_delphes_files_and_takes_a_data_config(tmp_path):
    (tmp_path / "raw" / "ttbar").mkdir(parents=True)
    shutil.copy(REAL_DELPHES, tmp_path / "raw" / "ttbar" / "zh.root")
    env = os.environ | {"TOPO_DATA_ROOT": str(tmp_path / "data"), "TOPO_DASK_WORKERS": "1"}

    def topo(*args):
        return subprocess.run([sys.executable, "-m", "tasks.cli", "ingest", "--input", str(tmp_path / "raw"), *args],
                              capture_output=True, text=True, env=env)  # fmt: skip

    done = topo("--output", str(tmp_path / "a"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["events_written"] > 0 and "1 file(s) matched" in done.stderr
    tight = write_config(tmp_path / "tight.yaml", **{"roles.muons.collections": ["MuonTight"]})
    refused = topo("--output", str(tmp_path / "b"), "--data-config", tight)
    assert refused.returncode == 2 and "every input file is bad" in refused.stderr and "MuonTight.PT" in refused.stderr


def test_an_rntuple_ingests_to_the_same_events_as_a_ttree(tmp_path, dask_client):
    """uproot 5.7 writes a dict of arrays as an RNTuple, ROOT's columnar format:
    the same events as a TTree and as an RNTuple give the same Parquet content."""
    import uproot

    from tests.support.events import busy_background, event, particle, write_root

    rng = np.random.default_rng(8)
    events = []
    for i in range(40):
        tracks, photons, neutrals = busy_background(rng)
        lepton = particle(30.0 + i, 0.5, -1.0 + 0.05 * i, charge=-1)
        events.append(event(tracks=tracks, photons=photons, neutrals=neutrals, muons=[lepton], met=(20.0 + i, 0.3)))
    tables = {}
    for style in ("uproot", "rntuple"):
        path = tmp_path / style / "wjets" / "events.root"
        path.parent.mkdir(parents=True)
        write_root(path, events, style=style)
        kind = type(uproot.open(path)["Delphes"]).__name__
        assert ("RNTuple" in kind) == (style == "rntuple"), kind
        summary = ingest([Sample("wjets", 2, (str(path),))], tmp_path / f"out-{style}", dask_client, chunk=15)
        assert summary["bad_files"] == {} and summary["events_written"] > 20
        tables[style] = pq.read_table(tmp_path / f"out-{style}").sort_by("entry")
    assert tables["rntuple"].equals(tables["uproot"])
