"""The fast feature kernel against the per-event reference (docs/spec.md steps 1–3)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tasks.core import schema
from tasks.core.errors import SettingsError
from tasks.events.kernel import EMPTY_PARTICLE_MAP, NO_ISOLATED_LEPTON, PASSED, compute_features, dense_llf
from tasks.events.sources import get_source
from tests.support import reference
from tests.support.events import busy_background, event, particle, to_chunk

HLF = {name: i for i, name in enumerate(schema.HLF_COLUMNS)}
LLF = {name: i for i, name in enumerate(schema.LLF_COLUMNS)}


def assert_matches_reference(chunk):
    fast = compute_features(chunk)
    status, hlfs, llfs = reference.reference_features(chunk)
    np.testing.assert_array_equal(fast.status, status)
    for e in np.flatnonzero(status == PASSED):
        np.testing.assert_allclose(
            fast.hlf[e], np.asarray(hlfs[e], np.float32), rtol=1e-5, atol=1e-6, err_msg=f"HLF of event {e}"
        )
        rows = fast.llf[fast.llf_offsets[e] : fast.llf_offsets[e + 1]]
        np.testing.assert_allclose(
            rows, np.asarray(llfs[e], np.float32), rtol=1e-5, atol=1e-5, err_msg=f"LLF of event {e}"
        )
    return fast


def lepton(pt, eta=0.3, phi=1.0, charge=-1):
    return particle(pt, eta, phi, charge=charge)


def own_track(lep, pid):
    return particle(lep["pt"], lep["eta"], lep["phi"], pid=pid, x=0.0, y=0.0, z=1.0)


def with_background(rng, **objects):
    tracks, photons, neutrals = busy_background(rng)
    extra_tracks = objects.pop("tracks", [])
    return event(
        tracks=extra_tracks + tracks,
        photons=objects.pop("photons", photons),
        neutrals=objects.pop("neutrals", neutrals),
        **objects,
    )


def edge_case_events():
    rng = np.random.default_rng(5)
    far = dict(eta=-2.0, phi=-1.0)  # a lepton away from most background
    e40, m35 = lepton(40.0, **far), lepton(35.0, eta=2.0, phi=2.0)
    e30, m50 = lepton(30.0, **far), lepton(50.0, eta=2.0, phi=2.0)
    at_cut = lepton(schema.LEPTON_MIN_PT, **far)
    seam = lepton(40.0, eta=0.5, phi=3.13)
    dirty = lepton(60.0, eta=1.0, phi=0.0)
    clean_second = lepton(45.0, eta=-1.5, phi=-2.5)
    cases = {
        "no lepton": with_background(rng),
        "lepton exactly at 23 GeV": with_background(rng, electrons=[at_cut], tracks=[own_track(at_cut, 11)]),
        "electron and muon, electron harder": with_background(
            rng, electrons=[e40], muons=[m35], tracks=[own_track(e40, 11), own_track(m35, 13)]
        ),
        "electron and muon, muon harder": with_background(
            rng, electrons=[e30], muons=[m50], tracks=[own_track(e30, 11), own_track(m50, 13)]
        ),
        "electron and muon, equal pT": with_background(rng, electrons=[e40], muons=[lepton(40.0, eta=2.0, phi=2.0)]),
        "first electron not isolated": with_background(
            rng,
            electrons=[dirty, clean_second],
            tracks=[
                own_track(dirty, 11),
                particle(40.0, 1.05, 0.05, pid=211, x=0, y=0, z=0),
                own_track(clean_second, 11),
            ],
        ),
        "empty photon collection": with_background(rng, electrons=[e40], photons=[]),
        "empty neutral collection": with_background(rng, electrons=[e40], neutrals=[]),
        "photons all below the map threshold": with_background(rng, electrons=[e40], photons=[particle(0.9, 0.0, 0.0)]),
        "phi seam: track across +-pi in the cone": with_background(
            rng, electrons=[seam], tracks=[own_track(seam, 11), particle(5.0, 0.5, -3.12, pid=211, x=0, y=0, z=0)]
        ),
        "phi seam: lepton made non-isolated across +-pi": with_background(
            rng, electrons=[seam], tracks=[own_track(seam, 11), particle(30.0, 0.5, -3.12, pid=-211, x=0, y=0, z=0)]
        ),
    }
    # The kernel bins particles on an (η, φ) grid of 0.31 × 2π/20 cells,
    # clamped at |η| = 6.2: cone members across a cell edge, beyond the clamp,
    # and a φ outside [-π, π] (searched exhaustively) must all still count.
    edge = lepton(40.0, eta=0.31 * 3 + 0.001, phi=-math.pi + 2 * math.pi / 20 + 0.001)
    fwd = lepton(40.0, eta=6.1, phi=0.0)
    cases["grid: cone members across cell edges"] = with_background(
        rng,
        electrons=[edge],
        tracks=[own_track(edge, 11)]
        + [
            particle(1.0, edge["eta"] + de, edge["phi"] + dp, pid=211, x=0, y=0, z=0)
            for de, dp in [(-0.2, 0.0), (0.0, -0.2), (-0.15, -0.15), (0.2, 0.1), (-0.299, 0.0), (0.0, -0.2999)]
        ],
    )
    cases["grid: forward particles beyond the clamped edge"] = with_background(
        rng,
        electrons=[fwd],
        tracks=[own_track(fwd, 11), particle(4.0, 6.35, 0.1, pid=211, x=0, y=0, z=0)],
        photons=[particle(4.0, 6.25, -0.1), particle(2.0, 7.5, 0.0), particle(2.0, 0.0, 0.0)],
        neutrals=[particle(2.0, 6.3, 0.05), particle(2.0, -7.0, 0.0)],
    )
    off_range = lepton(40.0, eta=0.0, phi=3.1)
    cases["grid: phi outside [-pi, pi] searched exhaustively"] = with_background(
        rng, electrons=[off_range], tracks=[own_track(off_range, 11), particle(30.0, 0.0, 3.3, pid=211, x=0, y=0, z=0)]
    )
    many_tracks, many_photons, many_neutrals = busy_background(rng, 520, 180, 230)
    e = lepton(80.0, eta=0.0, phi=0.0)
    cases["more than 450 tracks, 150 photons, 200 neutrals"] = event(
        tracks=[own_track(e, -11)] + many_tracks, photons=many_photons, neutrals=many_neutrals, electrons=[e]
    )
    cases["jets: HT, b-tags, acceptance"] = with_background(
        rng,
        electrons=[e40],
        jets=[
            particle(120.0, 0.1, 0.2, btag=1),
            particle(45.0, -2.59, 1.0, btag=0),
            particle(45.0, 2.61, 1.0, btag=1),
            particle(29.9, 0.0, 0.0, btag=1),
        ],
    )
    return cases


@pytest.fixture(scope="module")
def edge_cases():
    cases = edge_case_events()
    names = list(cases)
    return names, assert_matches_reference(to_chunk(list(cases.values())))


def case(edge_cases, name):
    names, fast = edge_cases
    return fast, names.index(name)


def test_edge_cases_match_reference(edge_cases):
    names, fast = edge_cases
    assert len(fast.status) == len(names)


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("no lepton", NO_ISOLATED_LEPTON),
        ("lepton exactly at 23 GeV", NO_ISOLATED_LEPTON),
        ("empty photon collection", EMPTY_PARTICLE_MAP),
        ("empty neutral collection", EMPTY_PARTICLE_MAP),
        ("photons all below the map threshold", EMPTY_PARTICLE_MAP),
        ("phi seam: lepton made non-isolated across +-pi", NO_ISOLATED_LEPTON),
        ("grid: phi outside [-pi, pi] searched exhaustively", NO_ISOLATED_LEPTON),
    ],
)
def test_rejections(edge_cases, name, status):
    fast, e = case(edge_cases, name)
    assert fast.status[e] == status


@pytest.mark.parametrize(
    ("name", "is_electron", "pt"),
    [
        ("electron and muon, electron harder", 1.0, 40.0),
        ("electron and muon, muon harder", 0.0, 50.0),
        ("electron and muon, equal pT", 1.0, 40.0),
        ("first electron not isolated", 1.0, 45.0),
    ],
)
def test_lepton_choice(edge_cases, name, is_electron, pt):
    fast, e = case(edge_cases, name)
    assert fast.status[e] == PASSED
    assert fast.hlf[e, HLF["LepIsEle"]] == is_electron
    assert fast.hlf[e, HLF["LepPt"]] == pytest.approx(pt)
    row0 = fast.llf[fast.llf_offsets[e]]
    assert row0[LLF["isEle"]] == is_electron and row0[LLF["isMu"]] == 1 - is_electron


def test_own_track_excluded_and_phi_seam_in_cone(edge_cases):
    fast, e = case(edge_cases, "phi seam: track across +-pi in the cone")
    rows = fast.llf[fast.llf_offsets[e] : fast.llf_offsets[e + 1]]
    tracks = rows[rows[:, LLF["isChHad"]] == 1]
    lep = rows[0]
    assert not np.any((tracks[:, LLF["Pt"]] == lep[LLF["Pt"]]) & (tracks[:, LLF["Eta"]] == lep[LLF["Eta"]]))
    assert fast.group_counts[e, 0] == 40 + 1  # background tracks and the seam track, not the lepton's own
    # The 5 GeV track across the seam is inside the lepton's cone (ΔR ≈ 0.033).
    assert fast.hlf[e, HLF["LepIsoCh"]] >= 5.0 / 40.0 - 1e-6


def test_grid_keeps_cone_members_across_cells_and_beyond_the_clamp(edge_cases):
    fast, e = case(edge_cases, "grid: cone members across cell edges")
    assert fast.status[e] == PASSED
    assert fast.hlf[e, HLF["LepIsoCh"]] >= 6 * 1.0 / 40.0 - 1e-6  # all six neighbours, whichever cell they fell in
    fast, e = case(edge_cases, "grid: forward particles beyond the clamped edge")
    assert fast.status[e] == PASSED
    iso = fast.hlf[e, [HLF["LepIsoCh"], HLF["LepIsoGamma"], HLF["LepIsoNeu"]]]
    np.testing.assert_allclose(iso, [4.0 / 40.0, 4.0 / 40.0, 2.0 / 40.0], rtol=1e-5)


def test_caps_and_padding(edge_cases):
    fast, e = case(edge_cases, "more than 450 tracks, 150 photons, 200 neutrals")
    assert tuple(fast.group_counts[e]) == (schema.MAX_TRACKS, schema.MAX_PHOTONS, schema.MAX_NEUTRALS)
    dense = dense_llf(fast.llf, fast.llf_offsets)
    assert dense.shape == (len(fast.status), schema.LLF_ROWS, schema.LLF_FEATURES)
    full = dense[e]
    assert full[1 : 1 + 450, LLF["isChHad"]].all()
    assert full[451:601, LLF["isGamma"]].all()
    assert full[601:801, LLF["isNeuHad"]].all()
    _, small = case(edge_cases, "electron and muon, electron harder")
    n_rows = 1 + fast.group_counts[small].sum()
    assert dense[small, :n_rows].any(axis=1).all(), "filled rows come first, without gaps"
    assert not dense[small, n_rows:].any(), "padding rows must be exactly zero"


def test_jets(edge_cases):
    fast, e = case(edge_cases, "jets: HT, b-tags, acceptance")
    assert fast.hlf[e, HLF["nJets"]] == 2
    assert fast.hlf[e, HLF["nBjets"]] == 1
    assert fast.hlf[e, HLF["HT"]] == pytest.approx(165.0)


def test_mt_is_the_sparkdltrigger_definition(edge_cases):
    fast, e = case(edge_cases, "electron and muon, electron harder")
    h = fast.hlf[e]
    expected = 2 * h[HLF["MET"]] * h[HLF["LepPt"]] * (1 - math.cos(h[HLF["LepPhi"]] - h[HLF["PhiMET"]]))
    assert h[HLF["MT"]] == pytest.approx(expected, rel=1e-5)


def test_generated_files_match_reference(generated_sample):
    files = sorted(generated_sample.rglob("*.root"))
    assert len(files) == 6
    passed = 0
    for path in files:
        fast = assert_matches_reference(get_source("delphes").read_chunk(str(path), 0, 10**9))
        passed += int((fast.status == PASSED).sum())
    assert passed > 50, "the generated sample should mostly pass the selection"


def test_columns_follow_their_names_in_any_order():
    """The kernel writes every feature through its column name: another order
    moves the values with their names and changes nothing else."""
    chunk = to_chunk(list(edge_case_events().values()))
    default = compute_features(chunk)
    rng = np.random.default_rng(0)
    llf_order = tuple(rng.permutation(schema.LLF_COLUMNS))
    hlf_order = tuple(rng.permutation(schema.HLF_COLUMNS))
    assert llf_order != schema.LLF_COLUMNS and hlf_order != schema.HLF_COLUMNS
    permuted = compute_features(chunk, llf_columns=llf_order, hlf_columns=hlf_order)
    assert permuted.llf_columns == llf_order and permuted.hlf_columns == hlf_order
    assert (permuted.status == PASSED).sum() > 5
    np.testing.assert_array_equal(permuted.status, default.status)
    np.testing.assert_array_equal(permuted.llf_offsets, default.llf_offsets)
    np.testing.assert_array_equal(permuted.group_counts, default.group_counts)
    for i, name in enumerate(llf_order):
        np.testing.assert_array_equal(permuted.llf[:, i], default.llf[:, LLF[name]], err_msg=f"LLF {name}")
    for i, name in enumerate(hlf_order):
        np.testing.assert_array_equal(permuted.hlf[:, i], default.hlf[:, HLF[name]], err_msg=f"HLF {name}")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"llf_columns": (*schema.LLF_COLUMNS[:-1], "Mass")}, "LLF columns .*unknown 'Mass'; missing 'Charge'"),
        ({"llf_columns": schema.LLF_COLUMNS[1:]}, "LLF columns .*missing 'Energy'"),
        ({"hlf_columns": (*schema.HLF_COLUMNS, "HT")}, "HLF columns .*repeated 'HT'"),
        ({"hlf_columns": ("HT",) * len(schema.HLF_COLUMNS)}, "HLF columns must name each of HT, MET"),
    ],
)
def test_unknown_or_missing_columns_are_refused(kwargs, message):
    with pytest.raises(SettingsError, match=message):
        compute_features(to_chunk([event()]), **kwargs)
