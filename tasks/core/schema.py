"""The single source of class labels, feature names, caps, event columns and cutflow steps.

Every stage, test and benchmark takes its names from here (docs/spec.md), so a
renamed feature or a changed cap is one edit.
"""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = ("qcd", "ttbar", "wjets")
"""Sample names, indexed by label: 0 QCD multijet, 1 tt̄, 2 W+jets."""

CLASS_TITLES: tuple[str, ...] = ("QCD", "tt̄", "W+jets")

LABELS: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}

# --- Step 1: trigger-like selection ------------------------------------------
TRACK_MAP_MIN_PT = 0.5
PHOTON_MAP_MIN_ET = 1.0
NEUTRAL_MAP_MIN_ET = 1.0
ISOLATION_CONE = 0.3
LEPTON_MIN_PT = 23.0
LEPTON_MAX_ISOLATION = 0.45
OWN_TRACK_MAX_DR = 1e-4
"""A track this close to the selected lepton is the lepton's own track."""

# --- Step 2: low-level features ----------------------------------------------
MAX_TRACKS = 450
MAX_PHOTONS = 150
MAX_NEUTRALS = 200
LLF_ROWS = 1 + MAX_TRACKS + MAX_PHOTONS + MAX_NEUTRALS  # 801

LLF_COLUMNS: tuple[str, ...] = (
    "Energy",
    "Px",
    "Py",
    "Pz",
    "Pt",
    "Eta",
    "Phi",
    "vtxX",
    "vtxY",
    "vtxZ",
    "ChPFIso",
    "GammaPFIso",
    "NeuPFIso",
    "isChHad",
    "isNeuHad",
    "isGamma",
    "isEle",
    "isMu",
    "Charge",
)
LLF_FEATURES = len(LLF_COLUMNS)  # 19

# --- Step 3: high-level features ---------------------------------------------
JET_MIN_PT = 30.0
JET_MAX_ABS_ETA = 2.6

HLF_COLUMNS: tuple[str, ...] = (
    "HT",
    "MET",
    "PhiMET",
    "MT",  # 2·MET·LepPt·(1 − cos Δφ): SparkDLTrigger's definition, the SQUARE of m_T
    "nJets",
    "nBjets",
    "LepPt",
    "LepEta",
    "LepPhi",
    "LepIsoCh",
    "LepIsoGamma",
    "LepIsoNeu",
    "LepCharge",
    "LepIsEle",
)
HLF_FEATURES = len(HLF_COLUMNS)  # 14

# --- Ingested event table (Parquet) ------------------------------------------
EVENT_COLUMNS: tuple[str, ...] = (
    "event_id",  # "<sample>/<file name>:<entry>", stable across re-runs
    "sample",
    "entry",
    "label",
    "hfeatures",  # 14 float32
    "lfeatures",  # n_particles × 19 float32, flattened: the filled rows of the 801 × 19 matrix
    "n_tracks",
    "n_photons",
    "n_neutrals",
)

# Sample generators (tasks/generator): toy, the parametrised classes of
# tasks.generator.physics (fast, for tests); pythia8, Pythia 8 at 13 TeV
# through the fast detector response (tasks.generator.pythia, .detector).
GENERATORS: tuple[str, ...] = ("toy", "pythia8")
DEFAULT_MIX: dict[str, tuple[float, float, float]] = {
    "toy": (1.0, 2.0, 4.0),
    # About equal selected events per class: the selection keeps ~11 % of the
    # written QCD events and ~73 % of the others (docs/benchmarks.md, "Pythia 8 generation").
    "pythia8": (7.0, 1.0, 1.0),
}
"""QCD : tt̄ : W+jets ratio of generated event counts, per generator, when none is given."""
DEFAULT_PILEUP = 30.0  # mean minimum-bias interactions per crossing (LHC Run 2: 20–40)
MAX_PILEUP = 200.0

# Cutflow stages, in the order the selection applies them.
CUTFLOW_STEPS: tuple[str, ...] = (
    "read",
    "rejected_empty_particle_map",
    "rejected_no_isolated_lepton",
    "rejected_non_finite",
    "written",
)
