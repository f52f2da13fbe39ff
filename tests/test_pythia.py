"""The Pythia 8 generator (issue 16): real Pythia events of each class,
seeded, filtered at generator level (a lepton, its isolation in the hard
event; QCD's heavy-flavour decays forced semileptonic and hadronized again
until one passes), a reused minimum-bias pileup pool, and the fast detector
response into the Delphes schema."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from tasks.core.errors import SettingsError
from tasks.generator import pythia
from tasks.generator.pythia import (
    FILTER_ISOLATION,
    FILTER_PT,
    HardEvents,
    MinBiasPool,
    filter_isolation,
    passes_lepton_filter,
)


@pytest.fixture(scope="module")
def wjets():
    return HardEvents("wjets", seed=11).take(40)


def test_the_same_seed_gives_the_same_events_and_another_seed_others(wjets):
    again = HardEvents("wjets", seed=11).take(5)
    for a, b in zip(wjets[:5], again, strict=True):
        for field in ("pid", "px", "py", "pz", "e", "x", "y", "z"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    other = HardEvents("wjets", seed=12).take(1)[0]
    assert len(other) != len(wjets[0]) or not np.array_equal(other.px, wjets[0].px)


def test_every_event_kept_has_a_lepton_above_the_filter(wjets):
    assert all(passes_lepton_filter(e) for e in wjets)
    assert FILTER_PT < 23.0  # below the selection, so resolution can lift a lepton over it


def test_qcd_heavy_flavour_decays_are_forced_and_weighted_by_their_branching_fractions():
    qcd = HardEvents("qcd", seed=21)
    events = qcd.take(4)
    assert all(filter_isolation(e) < FILTER_ISOLATION for e in events)
    for e in events:  # the lepton comes from a b or c hadron: the hard process has no other
        assert len(e.heavy) > 0
    # A forced hadron's open channels carry its semileptonic fraction (B: ~10 % to each of e and μ).
    assert 0.15 < qcd.fractions[511] < 0.35 and 0.1 < qcd.fractions[421] < 0.3
    assert all(0 < w < 0.35 for w in qcd.weights) and len(qcd.weights) == 4
    # Hadronized up to five times per parton-level event: more hadronizations than parton-level events.
    assert qcd.generated < qcd.hadronized <= 5 * qcd.generated
    wjets = HardEvents("wjets", seed=21)
    wjets.take(3)
    assert wjets.weights == [1.0] * 3 and wjets.hadronized == wjets.generated  # nothing forced, one try


def test_the_isolation_filter_drops_only_events_the_selection_drops(tmp_path, monkeypatch):
    """With the filter's isolation cut lifted, the events that pass the
    selection (pileup 30, the detector, the kernel) all had a hard-event
    isolation below FILTER_ISOLATION: the filter loses none of them."""
    import uproot

    from tasks.events.ingest import process_chunk
    from tasks.generator.detector import Detector
    from tasks.generator.generate import TREE_NAME, _columns

    monkeypatch.setattr(pythia, "FILTER_ISOLATION", np.inf)
    pool, rng = MinBiasPool(seed=4, size=50), np.random.default_rng(4)
    detector = Detector(rng)
    selected_isolation = []
    for sample, n in (("wjets", 30), ("qcd", 40)):
        hard = HardEvents(sample, seed=31).take(n)
        isolation = [filter_isolation(e) for e in hard]
        if sample == "qcd":
            assert max(isolation) > FILTER_ISOLATION  # the cut is lifted: unisolated leptons come through
        events = [detector.reconstruct(pool.overlay(e, 30, rng)[0]) for e in hard]
        path = tmp_path / f"{sample}.root"
        with uproot.recreate(path) as out:
            data = _columns(events)
            out.mktree(TREE_NAME, {k: v.type for k, v in data.items()}).extend(data)
        (tmp_path / sample).mkdir()
        result = process_chunk(sample, 0, str(path), 0, n, str(tmp_path / sample))
        assert "error" not in result, result
        entries = pq.read_table(tmp_path / sample, columns=["entry"]).column(0).to_pylist()
        selected_isolation += [isolation[i] for i in entries]
    assert len(selected_isolation) >= 15  # W mostly passes
    assert max(selected_isolation) < FILTER_ISOLATION


def test_the_w_transverse_mass_has_its_jacobian_edge_near_80_gev(wjets):
    mt = []
    for e in wjets:
        lepton = np.isin(np.abs(e.pid), (11, 13))
        i = np.flatnonzero(lepton)[np.argmax(e.pt[lepton])]
        nu = np.isin(np.abs(e.pid), (12, 14))
        nx, ny = e.px[nu].sum(), e.py[nu].sum()
        lpt, npt = e.pt[i], np.hypot(nx, ny)
        mt.append(np.sqrt(max(2 * (lpt * npt - e.px[i] * nx - e.py[i] * ny), 0.0)))
    mt = np.asarray(mt)
    assert 50 < np.median(mt) < 82  # the Jacobian peak sits just below the edge
    assert np.mean(mt < 90) >= 0.9  # and few events lie beyond it (off-shell W, extra neutrinos)


def test_events_have_their_own_primary_vertex_and_heavy_flavour_decays_are_displaced():
    events = HardEvents("ttbar", seed=3).take(6)
    primaries = [np.median(e.z) for e in events]
    assert np.std(primaries) > 5  # the luminous region, tens of mm long
    assert all(len(e.heavy) >= 2 for e in events)  # tt̄: two b quarks become B hadrons
    displaced = [np.hypot(e.x - np.median(e.x), e.y - np.median(e.y)) > 0.1 for e in events]
    assert all(d.any() for d in displaced)


def test_pileup_comes_from_a_reused_pool_at_vertices_of_its_own(wjets):
    pool = MinBiasPool(seed=9, size=20)
    rng = np.random.default_rng(1)
    overlaid, k = pool.overlay(wjets[0], 30, rng)
    assert 10 < k < 60 and len(overlaid) > len(wjets[0]) + 10 * k
    added_z = overlaid.z[len(wjets[0]) :]
    assert np.std(added_z) > 5  # spread along the beam, not at the hard vertex
    again, k_again = MinBiasPool(seed=9, size=20).overlay(wjets[0], 30, np.random.default_rng(1))
    assert k_again == k and np.array_equal(again.z, overlaid.z)  # seeded too


def test_wrong_settings_are_refused():
    with pytest.raises(SettingsError, match="unknown class 'zjets'"):
        HardEvents("zjets", seed=1)
    with pytest.raises(SettingsError, match="a Pythia seed is between 0 and"):
        HardEvents("qcd", seed=-1)
    with pytest.raises(SettingsError, match="at least one event"):
        MinBiasPool(seed=1, size=0)


# --- through the detector response, into the Delphes schema -----------------------
@pytest.fixture(scope="module")
def pythia_files(tmp_path_factory):
    """Eight events of each class with pileup 30, written by the generator's writer."""
    from tasks.generator.generate import write_file

    root = tmp_path_factory.mktemp("pythia")
    files = {}
    for sample in ("qcd", "ttbar", "wjets"):
        files[sample] = root / f"{sample}_000.root"
        write_file(str(files[sample]), sample, 8, seed=5, generator="pythia8", pileup=30.0)
    return files


def test_pythia_files_have_what_ingestion_reads_and_repeat_for_a_seed(pythia_files, tmp_path):
    import uproot

    from tasks.events.sources import detect_source, get_source
    from tasks.generator.detector import ECAL_ETA, HCAL_ETA, TRACKER_ETA
    from tasks.generator.generate import write_file

    for sample, path in pythia_files.items():
        assert detect_source(str(path)) == "delphes"
        entries, layout = get_source("delphes").examine(str(path))
        assert entries == 8 and layout["muons"] == "MuonTight", sample  # the paper card's naming
        chunk = get_source("delphes").read_chunk(str(path), 0, 8)
        # nothing outside the detector (the ingested-events contract refuses |η| > 5): the
        # outermost calorimeter cells are cut at the acceptance (HCAL cells of 0.087 do not tile 5.0)
        for role, reach in (("tracks", TRACKER_ETA), ("photons", ECAL_ETA), ("neutral_hadrons", HCAL_ETA)):
            eta = np.abs(getattr(chunk, role)["eta"])
            assert len(eta) and eta.max() <= reach, (sample, role, eta.max())
    again = tmp_path / "wjets_000.root"  # the same name: the per-file seed comes from it
    write_file(str(again), "wjets", 8, seed=5, generator="pythia8", pileup=30.0)
    a = uproot.open(pythia_files["wjets"])["Delphes"].arrays(library="ak")
    b = uproot.open(again)["Delphes"].arrays(library="ak")
    import awkward as ak

    assert ak.array_equal(a, b)


def test_pythia_physics_at_detector_level(pythia_files):
    from tasks.core import schema
    from tasks.events.kernel import lepton_isolations
    from tasks.events.sources import get_source

    source = get_source("delphes")
    chunks = {s: source.read_chunk(str(p), 0, 8) for s, p in pythia_files.items()}

    def per_event(chunk, role, mask):
        c = getattr(chunk, role)
        return np.add.reduceat(mask(c).astype(int), c.offsets[:-1]) * (np.diff(c.offsets) > 0)

    def central_jets(c):
        return (c["pt"] > schema.JET_MIN_PT) & (np.abs(c["eta"]) < schema.JET_MAX_ABS_ETA)

    tt = chunks["ttbar"]
    assert np.median(per_event(tt, "jets", central_jets)) >= 3  # tt̄: four partons, some lost or merged
    assert 0.8 <= per_event(tt, "jets", lambda c: central_jets(c) & (c["btag"] > 0)).mean() <= 2.5
    # W + jets keeps its few jets with pileup 30: pileup tracks leave the jets' input and ρ·A is
    # subtracted (without that, the median was 4.5 central jets above 30 GeV)
    assert np.median(per_event(chunks["wjets"], "jets", central_jets)) <= 2
    # pileup 30: the 450-track cap of the LLF is reached in some events
    tracks = per_event(tt, "tracks", lambda c: c["pt"] > schema.TRACK_MAP_MIN_PT)
    assert tracks.max() > schema.MAX_TRACKS
    # leptons of QCD (heavy-flavour decays inside jets) are less isolated than W's
    leading = {}
    for sample in ("qcd", "wjets"):
        chunk = chunks[sample]
        isolation = np.concatenate([lepton_isolations(chunk, r).sum(axis=1) for r in ("electrons", "muons")])
        pt = np.concatenate([chunk.electrons["pt"], chunk.muons["pt"]])
        leading[sample] = np.median(isolation[pt > 15]) if (pt > 15).any() else np.inf
    assert leading["qcd"] > leading["wjets"]
