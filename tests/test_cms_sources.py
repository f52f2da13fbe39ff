"""CMS files on the real samples in tests/data: PFNano's candidates split into
the kernel's roles, plain NanoAOD's HLF from the leptons' own isolation, the
source told from the file, one source per ingestion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot

from tasks.core import schema
from tasks.core.errors import InputFileError, SettingsError
from tasks.events.ingest import ingest, read_lfeatures
from tasks.events.kernel import PASSED, compute_features, lepton_isolations
from tasks.events.samples import Sample
from tasks.events.sources import detect_source, get_source

DATA = Path(__file__).resolve().parent / "data"
PFNANO = DATA / "coffea_pfnano.root"
NANO_DY = DATA / "coffea_nano_dy.root"
DELPHES = DATA / "zh_tag_1_delphes_events.root"
NO_KEYS = DATA / "coffea_bad_delphes.root"
H = {name: i for i, name in enumerate(schema.HLF_COLUMNS)}
L = {name: i for i, name in enumerate(schema.LLF_COLUMNS)}


def branches(path, names):
    return uproot.open(path)["Events"].arrays(names, library="np")


def test_the_source_is_told_from_the_file():
    assert detect_source(str(DELPHES)) == "delphes"
    assert detect_source(str(PFNANO)) == "pfnano"
    assert detect_source(str(NANO_DY)) == "nanoaod"
    with pytest.raises(InputFileError, match="no known event layout") as err:
        detect_source(str(NO_KEYS))
    assert str(NO_KEYS) in str(err.value)


def test_pfnano_candidates_split_by_pdgid_into_tracks_photons_and_neutral_hadrons():
    chunk = get_source("pfnano").read_chunk(str(PFNANO), 0, 10)
    raw = branches(PFNANO, ["PFCands_pdgId", "PFCands_dz", "PFCands_d0", "PV_x", "PV_y", "PV_z"])
    pdg = [np.abs(p) for p in raw["PFCands_pdgId"]]
    for role, ids in (("tracks", (211, 11, 13)), ("photons", (22,)), ("neutral_hadrons", (130, 1, 2))):
        counts = np.diff(getattr(chunk, role).offsets)
        np.testing.assert_array_equal(counts, [np.isin(p, ids).sum() for p in pdg], err_msg=role)
    # every candidate has a role: nothing of the event is lost
    total = sum(np.diff(getattr(chunk, r).offsets) for r in ("tracks", "photons", "neutral_hadrons"))
    np.testing.assert_array_equal(total, [len(p) for p in pdg])
    assert 700 < np.diff(chunk.tracks.offsets).mean() < 900  # the file's busy QCD events
    assert set(np.unique(np.abs(chunk.tracks["pid"]))) <= {211, 11, 13}
    # vertex in mm: z = 10·(PV_z + dz), and tracks with a small d0 sit on the beam line
    e0 = slice(chunk.tracks.offsets[0], chunk.tracks.offsets[1])
    charged = np.isin(pdg[0], (211, 11, 13))
    d0, dz = raw["PFCands_d0"][0][charged], raw["PFCands_dz"][0][charged]
    bare = (d0 == -1) & (dz == -1)  # no track details: at the primary vertex
    np.testing.assert_allclose(chunk.tracks["z"][e0][bare], 10 * raw["PV_z"][0], rtol=1e-6)
    np.testing.assert_allclose(chunk.tracks["z"][e0][~bare], 10 * (raw["PV_z"][0] + dz[~bare]), rtol=1e-6)
    small = (np.abs(d0) < 0.01) | bare
    assert small.sum() > 100 and bare.sum() > 100
    assert np.all(np.abs(chunk.tracks["x"][e0][small] - 10 * raw["PV_x"][0]) <= 0.1 + 1e-9)
    assert np.all(np.abs(chunk.tracks["y"][e0][small] - 10 * raw["PV_y"][0]) <= 0.1 + 1e-9)


def test_pfnano_lepton_isolation_from_the_candidates_agrees_with_cms():
    chunk = get_source("pfnano").read_chunk(str(PFNANO), 0, 10)
    raw = branches(PFNANO, ["Muon_pt", "Muon_pfRelIso03_chg", "Muon_tightId"])
    # the source keeps tight muons only: none in this file
    assert len(chunk.muons["pt"]) == sum(m.sum() for m in raw["Muon_tightId"]) == 0
    loose = get_source("pfnano", _without_ids()).read_chunk(str(PFNANO), 0, 10)
    ours = lepton_isolations(loose, "muons")
    cms = np.concatenate(raw["Muon_pfRelIso03_chg"])
    hard = loose.muons["pt"] > 20
    assert hard.sum() >= 4
    # CMS counts charged hadrons from the primary vertex only; the kernel all tracks above 0.5 GeV
    ratio = ours[hard, 0] / cms[hard]
    assert np.all((ratio > 0.95) & (ratio < 1.25)), ratio
    assert np.all(ours >= 0)  # the own track is taken out only where it is found


_LOOSE: list[str] = []


def _without_ids() -> str:
    """The PFNano config without the lepton ID requirements (a user's config)."""
    if not _LOOSE:
        import tempfile

        import yaml

        from tasks.events.data_config import default_config_path

        config = yaml.safe_load(default_config_path("pfnano").read_text())
        for role in ("electrons", "muons"):
            del config["roles"][role]["require"]
        path = Path(tempfile.mkdtemp()) / "pfnano-loose.yaml"
        path.write_text(yaml.safe_dump(config))
        _LOOSE.append(str(path))
    return _LOOSE[0]


def test_pfnano_ingests_and_its_qcd_events_fail_the_lepton_cut_as_cms_says(tmp_path, dask_client):
    summary = ingest([Sample("qcd", 0, (str(PFNANO),))], tmp_path / "events", dask_client)
    assert summary["source"] == "pfnano" and summary["particle_content"] is True
    assert summary["layouts"][str(PFNANO)]["tracks"] == "PFCands" and not summary["bad_files"]
    flow = summary["files"][str(PFNANO)]
    assert flow["read"] == 10 and flow["rejected_no_isolated_lepton"] == 10 and flow["written"] == 0
    # CMS's own ID and isolation agree: no tight, isolated lepton above the cut in any event
    raw = branches(PFNANO, ["Muon_pt", "Muon_tightId", "Muon_pfRelIso03_all"])
    cms = [
        np.any((pt > schema.LEPTON_MIN_PT) & tight & (iso < schema.LEPTON_MAX_ISOLATION))
        for pt, tight, iso in zip(raw["Muon_pt"], raw["Muon_tightId"], raw["Muon_pfRelIso03_all"], strict=True)
    ]
    assert not any(cms)
    assert json.loads((tmp_path / "events" / "_summary.json").read_text())["data_config"]["source"] == "pfnano"


def reference_nano_hlf(path) -> dict[int, dict[str, float]]:
    """The HLF of the passing events of a NanoAOD file, per event, straight from
    the branches (docs/spec.md's table for plain NanoAOD)."""
    names = ["pt", "eta", "phi", "charge", "pfRelIso03_all", "pfRelIso03_chg"]
    raw = branches(path, [f"{c}_{n}" for c in ("Muon", "Electron") for n in names] + [
        "Muon_tightId", "Electron_cutBased", "Jet_pt", "Jet_eta", "Jet_btagDeepFlavB", "MET_pt", "MET_phi"])  # fmt: skip
    out = {}
    for e in range(len(raw["MET_pt"])):
        best = None
        for c, ok in (("Electron", raw["Electron_cutBased"][e] >= 4), ("Muon", raw["Muon_tightId"][e])):
            for i in np.flatnonzero(ok):
                if raw[f"{c}_pt"][e][i] > 23 and raw[f"{c}_pfRelIso03_all"][e][i] < 0.45:
                    if best is None or raw[f"{c}_pt"][e][i] > best[2]:
                        best = (c, i, raw[f"{c}_pt"][e][i])
                    break  # the first isolated one of each kind
        if best is None:
            continue
        c, i, pt = best
        jets = (raw["Jet_pt"][e] > 30) & (np.abs(raw["Jet_eta"][e]) < 2.6)
        out[e] = {
            "HT": raw["Jet_pt"][e][jets].sum(),
            "nJets": jets.sum(),
            "nBjets": (jets & (raw["Jet_btagDeepFlavB"][e] > 0.2770)).sum(),
            "MET": raw["MET_pt"][e],
            "LepPt": pt,
            "LepEta": raw[f"{c}_eta"][e][i],
            "LepIsoCh": raw[f"{c}_pfRelIso03_chg"][e][i],
            "LepIsoNeu": raw[f"{c}_pfRelIso03_all"][e][i] - raw[f"{c}_pfRelIso03_chg"][e][i],
            "LepIsoGamma": 0.0,
            "LepIsEle": float(c == "Electron"),
            "LepCharge": raw[f"{c}_charge"][e][i],
        }
    return out


def test_plain_nanoaod_gives_the_hlf_from_the_leptons_own_isolation():
    chunk = get_source("nanoaod").read_chunk(str(NANO_DY), 0, 40)
    assert not chunk.particle_content and len(chunk.tracks.offsets) == 41 and chunk.tracks.offsets[-1] == 0
    feats = compute_features(chunk)
    passed = np.flatnonzero(feats.status == PASSED)
    expected = reference_nano_hlf(NANO_DY)
    assert sorted(expected) == list(passed) and len(passed) >= 10  # Drell-Yan: most events have a lepton
    for e, values in expected.items():
        for name, value in values.items():
            assert feats.hlf[e, H[name]] == pytest.approx(value, rel=1e-5, abs=1e-6), (e, name)
    np.testing.assert_array_equal(np.diff(feats.llf_offsets)[passed], 1)  # the lepton row only


def test_plain_nanoaod_ingests_marked_without_particles(tmp_path, dask_client):
    summary = ingest([Sample("wjets", 2, (str(NANO_DY),))], tmp_path / "events", dask_client)
    assert summary["source"] == "nanoaod" and summary["particle_content"] is False
    assert summary["events_written"] >= 10
    table = pq.read_table(tmp_path / "events")
    assert set(table.column("n_tracks").to_pylist()) == {0} and set(table.column("n_photons").to_pylist()) == {0}
    hlf = np.asarray(table.column("hfeatures").combine_chunks().values, np.float32).reshape(-1, schema.HLF_FEATURES)
    assert np.isfinite(hlf).all()
    assert np.all(hlf[:, H["LepPt"]] > schema.LEPTON_MIN_PT) and np.all(hlf[:, H["MET"]] >= 0)
    iso = hlf[:, H["LepIsoCh"]] + hlf[:, H["LepIsoGamma"]] + hlf[:, H["LepIsoNeu"]]
    assert np.all(iso < schema.LEPTON_MAX_ISOLATION) and np.all(hlf[:, H["nBjets"]] <= hlf[:, H["nJets"]])
    rows, offsets = read_lfeatures(table.column("lfeatures"))
    assert np.all(np.diff(offsets) == 1) and np.all(rows[:, L["isEle"]] + rows[:, L["isMu"]] == 1)
    marked = pq.read_schema(sorted((tmp_path / "events").glob("part-*.parquet"))[0]).metadata
    assert json.loads(marked[b"topo"])["particle_content"] is False


def test_one_source_per_ingestion_and_the_files_of_each_are_named(tmp_path, dask_client):
    files = (str(DELPHES), str(NANO_DY))
    with pytest.raises(SettingsError, match="mixes event sources") as err:
        ingest([Sample("wjets", 2, files)], tmp_path / "events", dask_client)
    assert f"delphes: {DELPHES}" in str(err.value) and f"nanoaod: {NANO_DY}" in str(err.value)
    assert not (tmp_path / "events").exists()  # nothing was written


def test_a_source_whose_file_lacks_a_role_names_the_role():
    with pytest.raises(InputFileError, match=r"lacks branch\(es\) for tracks \(PFCands.pt") as err:
        get_source("pfnano").inspect(str(NANO_DY))
    assert str(NANO_DY) in str(err.value) and "photons (PFCands.pt" in str(err.value)
