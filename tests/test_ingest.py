"""Ingestion on a real Dask LocalCluster: output, cutflow, bad input, atomicity, idempotence."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from tasks.core import schema
from tasks.core.errors import InputFileError, SettingsError
from tasks.events.collections import ROLES
from tasks.events.delphes import DelphesSource
from tasks.events.ingest import IngestError, ingest, read_lfeatures
from tasks.events.kernel import dense_llf
from tasks.events.samples import Sample, discover_samples, load_samples_file
from tasks.events.sources import SOURCES, EventSource, get_source, has_input, input_files, is_input_file
from tests.support.events import busy_background, event, particle, write_root

DELPHES = get_source("delphes")
inspect_file, read_chunk = DELPHES.inspect, DELPHES.read_chunk


def good_events(n=6, seed=1):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        tracks, photons, neutrals = busy_background(rng)
        lep = particle(40.0, -2.0, -1.0, charge=1)
        out.append(
            event(
                tracks=[particle(40.0, -2.0, -1.0, pid=-11, x=0, y=0, z=0)] + tracks,
                photons=photons,
                neutrals=neutrals,
                electrons=[lep],
            )
        )
    return out


def digest(directory):
    """Content of every Parquet part, as bytes of its table (not file metadata)."""
    h = hashlib.sha256()
    for part in sorted(directory.glob("part-*.parquet")):
        h.update(part.name.encode())
        table = pq.read_table(part)
        for column in table.columns:
            h.update(str(column.to_pylist()).encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def ingested(generated_sample, dask_client, tmp_path_factory):
    out = tmp_path_factory.mktemp("ingest") / "events"
    summary = ingest(discover_samples(generated_sample), out, dask_client, chunk=20)
    return out, summary


def test_output_schema_and_contents(ingested, generated_sample):
    out, summary = ingested
    table = pq.read_table(out)
    assert table.column_names == list(schema.EVENT_COLUMNS)
    assert table.num_rows == summary["events_written"] > 0
    assert set(table.column("label").to_pylist()) == {0, 1, 2}
    ids = table.column("event_id").to_pylist()
    assert len(set(ids)) == len(ids), "event ids must be unique"
    # The first and the last row agree with a direct computation on the file
    # they name (the last one is a slice, so read_lfeatures sees offsets > 0).
    from tasks.events.kernel import compute_features

    for index in (0, table.num_rows - 1):
        row = table.slice(index, 1)
        sample, rest = row.column("event_id")[0].as_py().split("/")
        file_name, entry = rest.split(":")
        assert row.column("label")[0].as_py() == schema.LABELS[sample] and int(entry) == row.column("entry")[0].as_py()
        hlf = np.asarray(row.column("hfeatures")[0].as_py(), np.float32)
        assert hlf.shape == (schema.HLF_FEATURES,)
        llf, offsets = read_lfeatures(row.column("lfeatures"))
        n_rows = 1 + sum(row.column(c)[0].as_py() for c in ("n_tracks", "n_photons", "n_neutrals"))
        assert llf.shape == (n_rows, schema.LLF_FEATURES) and offsets.tolist() == [0, n_rows]
        path = next(generated_sample.rglob(file_name))
        feats = compute_features(read_chunk(str(path), int(entry), int(entry) + 1))
        np.testing.assert_array_equal(feats.hlf[0], hlf)
        np.testing.assert_array_equal(dense_llf(feats.llf, feats.llf_offsets), dense_llf(llf, offsets))


def test_cutflow_adds_up(ingested):
    out, summary = ingested
    assert (out / "_cutflow.json").exists()
    for name, c in summary["cutflow"].items():
        rejected = sum(c[k] for k in schema.CUTFLOW_STEPS if k.startswith("rejected"))
        assert c["read"] == 50 and c["read"] == rejected + c["written"], name
    by_label = np.bincount(pq.read_table(out).column("label").to_numpy(), minlength=3)
    assert [summary["cutflow"][n]["written"] for n in schema.CLASS_NAMES] == by_label.tolist()


def test_rerun_gives_identical_content(ingested, generated_sample, dask_client, tmp_path):
    out, _ = ingested
    again = tmp_path / "events"
    ingest(discover_samples(generated_sample), again, dask_client, chunk=20)
    assert digest(again) == digest(out)
    # Chunking is an execution detail: the rows do not depend on it.
    other = tmp_path / "events-bigger-chunks"
    ingest(discover_samples(generated_sample), other, dask_client, chunk=1000)
    assert pq.read_table(other).sort_by("event_id").equals(pq.read_table(out).sort_by("event_id"))


def test_delphes_and_uproot_naming_read_the_same(tmp_path):
    events = good_events()
    write_root(tmp_path / "a.root", events, style="uproot")
    write_root(tmp_path / "b.root", events, style="delphes")
    import uproot

    assert "EFlowTrack.PT" in uproot.open(tmp_path / "b.root")["Delphes"].keys()
    a, b = read_chunk(str(tmp_path / "a.root"), 0, 100), read_chunk(str(tmp_path / "b.root"), 0, 100)
    for role, fields in ROLES.items():
        np.testing.assert_array_equal(getattr(a, role).offsets, getattr(b, role).offsets)
        assert tuple(getattr(a, role).fields) == fields
        for f in fields:
            np.testing.assert_array_equal(getattr(a, role)[f], getattr(b, role)[f])
    np.testing.assert_array_equal(a.met, b.met)
    np.testing.assert_array_equal(a.met_phi, b.met_phi)


def make_bad_inputs(directory):
    """One file of every kind of damage, with what its error must mention."""
    write_root(directory / "good.root", good_events())
    full = (directory / "good.root").read_bytes()
    (directory / "truncated.root").write_bytes(full[: len(full) // 2])
    (directory / "not_root.root").write_text("this is a CSV file, really\n1,2,3\n")
    (directory / "empty.root").write_bytes(b"")
    write_root(directory / "no_tree.root", good_events(), tree_name="Other")
    write_root(directory / "no_btag.root", good_events(), drop=("Jet.BTag",))
    write_root(directory / "no_events.root", [])
    return {
        "truncated.root": "",  # uproot's own words vary with where the cut falls
        "not_root.root": "not a readable ROOT file",
        "empty.root": "empty file",
        "no_tree.root": "the file holds: Other",
        "no_btag.root": "Jet.BTag",
        "no_events.root": "contains no events",
    }


@pytest.mark.parametrize(
    "name", ["truncated.root", "not_root.root", "empty.root", "no_tree.root", "no_btag.root", "no_events.root"]
)
def test_inspect_names_the_problem(tmp_path, name):
    expected = make_bad_inputs(tmp_path)[name]
    with pytest.raises(InputFileError) as err:
        inspect_file(str(tmp_path / name)) if name != "truncated.root" else read_chunk(str(tmp_path / name), 0, 6)
    assert str(tmp_path / name) in str(err.value)
    assert expected in str(err.value)


@pytest.mark.parametrize("flat_met", [False, True])
def test_reader_accepts_jagged_and_flat_missing_et(tmp_path, flat_met):
    rng = np.random.default_rng(3)
    events = [event(*busy_background(rng), met=(10.0 * (i + 1), 0.1 * i)) for i in range(4)]
    write_root(tmp_path / "met.root", events, flat_met=flat_met)
    chunk = read_chunk(str(tmp_path / "met.root"), 1, 4)
    assert len(chunk) == 3
    np.testing.assert_allclose(chunk.met, [20.0, 30.0, 40.0])
    np.testing.assert_allclose(chunk.met_phi, [0.1, 0.2, 0.3], rtol=1e-6)
    tracks = chunk.tracks
    assert tracks.offsets.tolist() == [0, 40, 80, 120]  # entry_start > 0: offsets rebased to 0
    np.testing.assert_array_equal(
        tracks["pt"], np.array([p["pt"] for e in events[1:] for p in e["tracks"]], np.float32)
    )


def test_bad_files_are_listed_and_good_ones_kept(tmp_path, dask_client):
    expected = make_bad_inputs(tmp_path)
    files = tuple(str(p) for p in sorted(tmp_path.glob("*.root")))
    out = tmp_path / "out" / "events"
    summary = ingest([Sample("wjets", 2, files)], out, dask_client, chunk=4)
    assert set(summary["bad_files"]) == {str(tmp_path / n) for n in expected}
    for name, words in expected.items():
        assert words in summary["bad_files"][str(tmp_path / name)]
    table = pq.read_table(out)
    assert table.num_rows == 6
    assert {i.split(":")[0] for i in table.column("event_id").to_pylist()} == {"wjets/good.root"}


def test_all_bad_fails_and_leaves_previous_output(tmp_path, dask_client, ingested):
    previous, _ = ingested
    out = tmp_path / "events"
    shutil.copytree(previous, out)
    before = digest(out)
    make_bad_inputs(tmp_path)
    bad = tuple(str(tmp_path / n) for n in ("not_root.root", "empty.root", "no_tree.root"))
    with pytest.raises(IngestError, match="every input file is bad"):
        ingest([Sample("qcd", 0, bad)], out, dask_client)
    assert digest(out) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".events")], "no temporary directory left behind"


def test_non_finite_input_is_rejected_by_name(tmp_path, dask_client):
    events = good_events(4)
    events[1]["met"] = (float("nan"), 0.3)
    write_root(tmp_path / "nan.root", events)
    summary = ingest([Sample("ttbar", 1, (str(tmp_path / "nan.root"),))], tmp_path / "events", dask_client)
    assert summary["cutflow"]["ttbar"]["rejected_non_finite"] == 1
    assert summary["cutflow"]["ttbar"]["written"] == 3
    assert summary["non_finite"][str(tmp_path / "nan.root")] == {"HLF MET": 1, "HLF MT": 1}


def test_samples_file_and_discovery_errors(tmp_path):
    with pytest.raises(SettingsError, match="does not exist"):
        discover_samples(tmp_path / "missing")
    with pytest.raises(SettingsError, match="no ROOT files"):
        discover_samples(tmp_path)
    write_root(tmp_path / "a.root", good_events(1))
    spec = tmp_path / "samples.yaml"
    spec.write_text("samples:\n  - {name: tt, label: 1, files: ['*.root']}\n")
    assert load_samples_file(spec) == [Sample("tt", 1, (str(tmp_path / "a.root"),))]
    spec.write_text("samples:\n  - {name: tt, label: 7, files: ['*.root']}\n")
    with pytest.raises(SettingsError, match="label must be one of"):
        load_samples_file(spec)
    spec.write_text("samples:\n  - {name: tt, label: 1, files: ['nothing*.root']}\n")
    with pytest.raises(SettingsError, match="no file matches"):
        load_samples_file(spec)


def test_sources_registry_and_input_files(tmp_path):
    assert isinstance(DELPHES, EventSource) and isinstance(DELPHES, DelphesSource)
    assert DELPHES.kind == "delphes" and DELPHES.patterns == ("*.root",)
    assert set(SOURCES) == {"delphes", "pfnano", "nanoaod"}
    with pytest.raises(SettingsError, match="unknown event source 'lhe'; known sources: delphes, nanoaod, pfnano"):
        get_source("lhe")
    with pytest.raises(SettingsError, match="unknown event source 'lhe'"):
        discover_samples(tmp_path, source="lhe")
    assert input_files(tmp_path / "missing") == [] and not has_input(tmp_path / "missing")
    (tmp_path / "b" / "deep").mkdir(parents=True)
    for name in ("b/deep/z.root", "a.root", "b/notes.txt", "b/y.root.tmp"):
        (tmp_path / name).write_text("")
    assert input_files(tmp_path) == [str(tmp_path / "a.root"), str(tmp_path / "b" / "deep" / "z.root")]
    assert is_input_file(tmp_path / "a.root") and not is_input_file(tmp_path / "b" / "y.root.tmp")
    assert has_input(tmp_path / "b") and has_input(tmp_path / "b" / "deep", source="delphes")
    with pytest.raises(SettingsError, match="unknown event source"):
        has_input(tmp_path / "missing", source="lhe")


def test_unknown_source_fails_before_any_work(tmp_path, dask_client):
    write_root(tmp_path / "a.root", good_events(1))
    with pytest.raises(SettingsError, match="unknown event source 'rntuple'"):
        ingest([Sample("tt", 1, (str(tmp_path / "a.root"),))], tmp_path / "events", dask_client, source="rntuple")
    assert not (tmp_path / "events").exists()
