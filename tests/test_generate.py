"""The sample generator: reproducible, configurable, and physically sensible."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.core import schema
from tasks.core.errors import SettingsError
from tasks.core.storage import read_json
from tasks.events.delphes import DelphesSource
from tasks.events.kernel import PASSED, compute_features, dense_llf
from tasks.generator.generate import MANIFEST, SampleRequest, generate, parse_mix, write_file

read_chunk = DelphesSource().read_chunk
HLF = {name: i for i, name in enumerate(schema.HLF_COLUMNS)}
LLF = {name: i for i, name in enumerate(schema.LLF_COLUMNS)}


def test_same_seed_same_events_other_seed_other_events(tmp_path):
    write_file(str(tmp_path / "a.root"), "ttbar", 20, seed=3)
    (tmp_path / "b").mkdir()
    write_file(str(tmp_path / "b" / "a.root"), "ttbar", 20, seed=3)
    write_file(str(tmp_path / "c.root"), "ttbar", 20, seed=4)
    a, b = read_chunk(str(tmp_path / "a.root"), 0, 20), read_chunk(str(tmp_path / "b" / "a.root"), 0, 20)
    np.testing.assert_array_equal(a.tracks["pt"], b.tracks["pt"])
    np.testing.assert_array_equal(a.met, b.met)
    c = read_chunk(str(tmp_path / "c.root"), 0, 20)
    assert not np.array_equal(a.met, c.met)


def test_default_mix_is_imbalanced_and_layout(tmp_path):
    request = SampleRequest(events=70, files_per_sample=2)
    assert request.events_per_class() == [10, 20, 40]
    summary = generate(tmp_path / "raw", request)
    assert summary["events_per_sample"] == {"qcd": 10, "ttbar": 20, "wjets": 40}
    for name in schema.CLASS_NAMES:
        files = sorted((tmp_path / "raw" / name).glob("*.root"))
        assert [f.name for f in files] == [f"{name}_000.root", f"{name}_001.root"]
    assert read_json(tmp_path / "raw" / MANIFEST)["request"]["mix"] == [1.0, 2.0, 4.0]


def test_pythia_requests_default_to_a_mix_that_balances_the_selected_events():
    """Pythia's selection keeps ~11 % of QCD and ~73 % of the others: its default
    mix generates ~7 QCD events per tt̄ or W event; a given mix is kept."""
    request = SampleRequest(events=900, generator="pythia8")
    assert request.events_per_class() == [700, 100, 100]
    assert SampleRequest(events=900, generator="pythia8", mix=(1, 1, 1)).events_per_class() == [300, 300, 300]
    with pytest.raises(SettingsError, match="generator must be one of"):
        SampleRequest(generator="herwig")


def test_reuses_a_matching_sample_and_replaces_another(tmp_path):
    out = tmp_path / "raw"
    generate(out, SampleRequest(events=30, files_per_sample=1, seed=1))
    stamp = (out / "qcd" / "qcd_000.root").stat().st_mtime_ns
    generate(out, SampleRequest(events=30, files_per_sample=1, seed=1))
    assert (out / "qcd" / "qcd_000.root").stat().st_mtime_ns == stamp
    generate(out, SampleRequest(events=30, files_per_sample=1, seed=2))
    assert read_json(out / MANIFEST)["request"]["seed"] == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"events": 2}, "events must be at least"),
        ({"files_per_sample": 0}, "files_per_sample"),
        ({"mix": (1, 0, 1)}, "positive weights"),
        ({"branch_style": "cms"}, "branch_style"),
    ],
)
def test_bad_requests_are_refused(kwargs, message):
    with pytest.raises(SettingsError, match=message):
        SampleRequest(**kwargs)


def test_parse_mix():
    assert parse_mix("1:2:4") == (1.0, 2.0, 4.0)
    with pytest.raises(SettingsError, match="three weights"):
        parse_mix("1:2")
    with pytest.raises(SettingsError, match="must look like"):
        parse_mix("a:b:c")


@pytest.fixture(scope="module")
def physics_sample(tmp_path_factory):
    """About 1,000 generated events of each class, after selection."""
    out = tmp_path_factory.mktemp("physics")
    result = {}
    for name in schema.CLASS_NAMES:
        path = str(out / f"{name}.root")
        write_file(path, name, 1500, seed=21)
        feats = compute_features(read_chunk(path, 0, 1500))
        result[name] = feats
    return result


def passed_hlf(feats):
    return feats.hlf[feats.status == PASSED]


def test_hlf_classifier_separates_classes_but_not_trivially(physics_sample):
    """GENERATOR.md: a simple HLF classifier reaches AUC 0.80–0.995 for each class."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    x = np.concatenate([passed_hlf(physics_sample[n]) for n in schema.CLASS_NAMES])
    y = np.concatenate([np.full(len(passed_hlf(physics_sample[n])), i) for i, n in enumerate(schema.CLASS_NAMES)])
    assert len(y) > 2000
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.4, random_state=0, stratify=y)
    proba = HistGradientBoostingClassifier(random_state=0).fit(x_tr, y_tr).predict_proba(x_te)
    aucs = [roc_auc_score(y_te == k, proba[:, k]) for k in range(3)]
    assert all(0.80 <= a <= 0.995 for a in aucs), aucs


def test_class_signatures(physics_sample):
    w, tt, qcd = (passed_hlf(physics_sample[n]) for n in ("wjets", "ttbar", "qcd"))
    median = lambda h, c: float(np.median(h[:, HLF[c]]))  # noqa: E731
    # Jets and b-tags: tt̄ ≫ QCD ≳ W+jets.
    assert median(tt, "nJets") >= 3 and median(w, "nJets") <= 1
    assert np.mean(tt[:, HLF["nBjets"]] >= 1) > 0.6 and np.mean(w[:, HLF["nBjets"]] >= 1) < 0.05
    assert median(tt, "HT") > 200 > median(qcd, "HT") > median(w, "HT")
    # W: Jacobian peak of m_T near m_W (MT is its square), real MET; QCD: little MET.
    mt_w = np.sqrt(w[:, HLF["MT"]])
    assert 55 < np.percentile(mt_w, 75) < 95
    assert median(qcd, "MET") < 30 < median(w, "MET") < median(tt, "MET")
    # QCD leptons are soft and sit in jets: less isolated.
    iso = lambda h: h[:, HLF["LepIsoCh"]] + h[:, HLF["LepIsoGamma"]] + h[:, HLF["LepIsoNeu"]]  # noqa: E731
    assert np.median(iso(qcd)) > 2 * np.median(iso(w))
    assert median(qcd, "LepPt") < median(w, "LepPt") < median(tt, "LepPt")
    # Real lepton-filtered samples: most QCD events fail the isolation.
    assert np.mean(physics_sample["qcd"].status == PASSED) < 0.5 < np.mean(physics_sample["wjets"].status == PASSED)


def test_particle_content_carries_more_than_the_hlf(physics_sample):
    """b decays leave displaced tracks; the caps are reached in busy events."""

    def displaced_fraction(feats):
        rows = feats.llf[feats.llf[:, LLF["isChHad"]] == 1]
        return np.mean(np.hypot(rows[:, LLF["vtxX"]], rows[:, LLF["vtxY"]]) > 0.5)

    assert displaced_fraction(physics_sample["ttbar"]) > 3 * displaced_fraction(physics_sample["wjets"])
    counts = np.concatenate([f.group_counts[f.status == PASSED] for f in physics_sample.values()])
    caps = np.array([schema.MAX_TRACKS, schema.MAX_PHOTONS, schema.MAX_NEUTRALS])
    assert (counts == caps).any(axis=0).all(), "every cap should be hit by some events"
    assert np.median(counts[:, 0]) > 100


def test_delphes_branch_style(tmp_path):
    import uproot

    write_file(str(tmp_path / "d.root"), "wjets", 5, seed=1, branch_style="delphes")
    keys = uproot.open(tmp_path / "d.root")["Delphes"].keys()
    assert "EFlowTrack.PT" in keys and "EFlowTrack_size" in keys
    feats = compute_features(read_chunk(str(tmp_path / "d.root"), 0, 5))
    assert dense_llf(feats.llf, feats.llf_offsets).shape == (5, 801, 19)
