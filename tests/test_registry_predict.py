"""Registry (MLflow, local SQLite store), promotion, rollback, and scoring new events."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tasks.core.errors import SettingsError
from tasks.datasets.prepare import PrepareSettings, model_inputs, prepare
from tasks.datasets.scaling import Scaler
from tasks.learning.evaluate import evaluate
from tasks.learning.predict import predict
from tasks.learning.registry import CHAMPION, RegistryError, champion_history, download, promote, register, rollback
from tasks.learning.scoring import _rescale
from tasks.learning.train import TrainSettings, parse_schedule, train


@pytest.fixture(scope="module")
def models(prepared, tmp_path_factory):
    """A trained HLF model and a useless one (constant output) of the same kind."""
    import keras

    out, _, _ = prepared
    root = tmp_path_factory.mktemp("models")
    settings = TrainSettings(
        model="hlf", feed="petastorm", epochs=30, batch_size=8, learning_rates=parse_schedule("1e-2")
    )
    train(out, root / "good", settings)
    shutil.copytree(root / "good", root / "constant")
    model = keras.models.load_model(root / "constant" / "model.keras")
    for layer in model.layers:
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    model.save(root / "constant" / "model.keras")
    for name in ("good", "constant"):
        evaluate(root / name, root / f"{name}-evaluation")
    return root


def test_register_promote_only_better_and_roll_back(models, prepared, tmp_path, monkeypatch):
    out, _, _ = prepared
    tracking = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    constant = register(models / "constant", models / "constant-evaluation", tracking)
    assert (
        register(models / "constant", models / "constant-evaluation", tracking)["version"] == constant["version"]
    )  # a retry
    good = register(models / "good", models / "good-evaluation", tracking)
    assert (constant["version"], good["version"]) == (1, 2)
    # Scored on the training split, where the trained model is surely better than a constant one.
    data = dict(test_path=out / "train", fmt="petastorm", tracking_uri=tracking, data_scaler_path=out / "scaler.json")
    first = promote("topo-hlf", 1, **data)
    assert first["promoted"] and first["reason"] == "no champion yet"
    second = promote("topo-hlf", 2, **data)
    assert second["promoted"] and second["champion_before"] == 1
    assert second["scores"]["challenger"]["mean_auc"] > second["scores"]["champion"]["mean_auc"]
    with pytest.raises(RegistryError, match="already the champion"):
        promote("topo-hlf", 2, **data)
    # The constant model again as a challenger: it must not displace the trained one.
    from mlflow import MlflowClient

    kept = promote("topo-hlf", 1, **data)
    assert not kept["promoted"] and "does not beat" in kept["reason"]
    assert int(MlflowClient().get_model_version_by_alias("topo-hlf", CHAMPION).version) == 2
    decision = json.loads(MlflowClient().get_model_version("topo-hlf", "1").tags["promotion_decision"])
    assert (
        decision["promoted"] is False
        and decision["scores"]["champion"]["mean_auc"] > decision["scores"]["challenger"]["mean_auc"]
    )
    assert [h["champion"] for h in champion_history("topo-hlf", tracking)] == [1, 2]
    assert rollback("topo-hlf", tracking) == {"name": "topo-hlf", "champion": 1, "replaced": 2}
    assert int(MlflowClient().get_model_version_by_alias("topo-hlf", CHAMPION).version) == 1
    champion_dir = download("topo-hlf", tracking, alias=CHAMPION, dst=tmp_path / "dl")
    assert {"model.keras", "scaler.json", "training.json", "MLmodel"} <= {p.name for p in champion_dir.iterdir()}
    # The MLflow model carries its signature: named float32 tensors in, three probabilities out.
    import mlflow

    signature = mlflow.models.get_model_info("models:/topo-hlf/1").signature
    assert signature.inputs.input_names() == ["HLF_input"]
    assert signature.inputs.inputs[0].shape == (-1, 14) and signature.outputs.inputs[0].shape == (-1, 3)
    # A registered version leaves the project as SavedModel and ONNX: topo export --model --version.
    from tasks.cli import main

    monkeypatch.setenv("TOPO_MLFLOW_TRACKING_URI", tracking)
    monkeypatch.setenv("TOPO_DATA_ROOT", str(tmp_path / "data"))
    assert main(["export", "--model", "hlf", "--version", "2"]) == 0
    exported = tmp_path / "data" / "exports" / "hlf-v2"
    assert {"model.onnx", "saved_model", "scaler.json", "features.json"} <= {p.name for p in exported.iterdir()}
    assert (exported / "scaler.json").read_bytes() == (models / "good" / "scaler.json").read_bytes()
    assert main(["export", "--model", "hlf", "--version", "9"]) == 2  # a clear error, nothing written
    assert not (tmp_path / "data" / "exports" / "hlf-v9").exists()
    with pytest.raises(SettingsError, match="unknown promotion metric"):
        promote("topo-hlf", 2, metric="speed", **data)
    with pytest.raises(RegistryError, match="no version 7"):
        download("topo-hlf", tracking, version=7)


def test_a_model_is_fed_its_own_scaling(ingested_events, prepared, dask_client, tmp_path):
    out, _, _ = prepared
    other = prepare(ingested_events, tmp_path / "other", dask_client, PrepareSettings(seed=11, shard_events=100))
    a, b = Scaler.load(out / "scaler.json"), Scaler.load(tmp_path / "other" / "scaler.json")
    assert a.sha256 != b.sha256
    table = pq.read_table(ingested_events).slice(0, 6)
    hlf_a, gru_a, _ = model_inputs(table, a)
    hlf_b, gru_b, _ = model_inputs(table, b)
    gru_a, gru_b = gru_a.reshape(-1, 801, 19), gru_b.reshape(-1, 801, 19)
    gru, hlf = _rescale("inclusive", (gru_b, hlf_b), b, a)
    np.testing.assert_allclose(hlf, hlf_a, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gru, gru_a, rtol=1e-4, atol=1e-4)
    assert np.all(gru[gru_a.any(axis=-1) == 0] == 0)  # padding stays exactly zero
    assert other["scaler"]["sha256"] == b.sha256


def test_predict_root_and_parquet_agree(models, generated_sample, ingested_events, tmp_path):
    from_root = predict(generated_sample / "ttbar", tmp_path / "root.parquet", models / "good")
    from_parquet = predict(ingested_events, tmp_path / "parquet.parquet", models / "good")
    a = pq.read_table(tmp_path / "root.parquet").to_pandas().set_index("event_id")
    b = pq.read_table(tmp_path / "parquet.parquet").to_pandas().set_index("event_id")
    ttbar_ingested = [e for e in b.index if e.startswith("ttbar/")]
    assert from_root["events"] == len(ttbar_ingested) > 0 and from_parquet["events"] == len(b)
    # Same events (ids name the file and entry), same scores whichever way they came in.
    a.index = ["ttbar/" + e.split("/", 1)[1] for e in a.index]
    np.testing.assert_allclose(
        a.loc[ttbar_ingested, ["p_qcd", "p_ttbar", "p_wjets"]].to_numpy(),
        b.loc[ttbar_ingested, ["p_qcd", "p_ttbar", "p_wjets"]].to_numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(b[["p_qcd", "p_ttbar", "p_wjets"]].sum(axis=1), 1.0, rtol=1e-5)
    assert set(b["predicted"]) <= {"qcd", "ttbar", "wjets"}
    with pytest.raises(SettingsError, match="no input to score"):
        predict(tmp_path / "nothing-here", tmp_path / "x.parquet", models / "good")


def test_predictions_contract_gates_scoring_and_evaluation(models, ingested_events, tmp_path):
    """A diverged model (NaN weights) scores NaN: the predictions contract
    refuses the file, the previous output stays, the file is quarantined. The
    evaluation's per-event scores of a good model pass."""
    import keras

    from tasks.contracts import ContractError, ValidationSettings, validate

    contracts = ValidationSettings.under(tmp_path / "data", run_name="predict")
    output = tmp_path / "scores.parquet"
    predict(ingested_events, output, models / "good", contracts=contracts)
    before = output.read_bytes()
    shutil.copytree(models / "good", tmp_path / "diverged")
    model = keras.models.load_model(tmp_path / "diverged" / "model.keras")
    model.layers[-1].set_weights([np.full_like(w, np.nan) for w in model.layers[-1].get_weights()])
    model.save(tmp_path / "diverged" / "model.keras")
    with pytest.raises(ContractError, match="probabilities are numbers"):
        predict(ingested_events, output, tmp_path / "diverged", contracts=contracts)
    assert output.read_bytes() == before and not list(tmp_path.glob(".scores.parquet*"))
    assert (tmp_path / "data" / "quarantine" / "predictions" / "predict" / "scores.parquet").exists()

    evaluation = models / "good-evaluation" / "predictions.parquet"
    table = pq.read_table(evaluation)
    assert table.column_names == ["event_id", "label", "p_qcd", "p_ttbar", "p_wjets", "predicted"]
    assert validate("predictions", evaluation, contracts)["rows"] == table.num_rows > 0
    assert all(e.count("/") == 1 for e in table.column("event_id").to_pylist())  # real identities, not positions


def _open_store(uri: str) -> str:
    from tasks.learning.registry import EXPERIMENT, tracking

    return tracking(uri).get_experiment_by_name(EXPERIMENT).experiment_id


def test_tasks_opening_a_new_local_store_at_once_all_succeed(tmp_path):
    # Parallel tuning trials are the first to touch a new store; creating its
    # tables twice at once used to leave it half-migrated for good.
    import multiprocessing

    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        ids = pool.map(_open_store, [uri] * 4)
    assert len(set(ids)) == 1  # one experiment, seen by every task
    assert _open_store(uri) == ids[0]  # and the store still opens afterwards


def test_cms_files_are_scored_and_a_particle_model_refuses_events_without_particles(
    models, prepared, dask_client, tmp_path
):
    from tasks.events.ingest import ingest
    from tasks.events.samples import Sample

    data = Path(__file__).resolve().parent / "data"
    nano, pfnano = data / "coffea_nano_dy.root", data / "coffea_pfnano.root"
    scored = predict(nano, tmp_path / "nano.parquet", models / "good")  # sim-to-real: an HLF model on CMS files
    assert scored["source"] == "nanoaod" and scored["data_config"].endswith("nanoaod.yaml") and scored["events"] >= 10
    about = json.loads(pq.read_schema(tmp_path / "nano.parquet").metadata[b"topo"])
    assert about["source"] == "nanoaod" and about["particle_content"] is False and about["model"] == "hlf"
    assert predict(pfnano, tmp_path / "pf.parquet", models / "good")["source"] == "pfnano"  # no event passes

    out, _, _ = prepared
    gru = tmp_path / "gru"
    train(out, gru, TrainSettings(model="gru", feed="petastorm", epochs=1, batch_size=8))
    with pytest.raises(SettingsError, match="no particle content .* model 'gru' reads the particle sequence"):
        predict(nano, tmp_path / "refused.parquet", gru)
    ingest([Sample("dy", 2, (str(nano),))], tmp_path / "events", dask_client)
    with pytest.raises(SettingsError, match="no particle content"):  # ingested NanoAOD is marked too
        predict(tmp_path / "events", tmp_path / "refused.parquet", gru)
    assert not (tmp_path / "refused.parquet").exists()
