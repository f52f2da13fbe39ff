"""Model export (SavedModel, ONNX) with parity, and scoring with ONNX Runtime without TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tasks.core import schema
from tasks.datasets.prepare import model_inputs
from tasks.datasets.scaling import Scaler
from tasks.learning import export as export_module
from tasks.learning.export import ExportError, export, onnx_probabilities, onnx_session
from tasks.learning.train import TrainSettings, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory):
    """The paper's three models, one epoch each on the small prepared fixture."""
    out, _, _ = prepared
    root = tmp_path_factory.mktemp("export-models")
    for model in ("hlf", "gru", "inclusive"):
        train(out, root / model, TrainSettings(model=model, feed="petastorm", epochs=1, batch_size=16))
    return root


def _events(ingested_events, scaler: Scaler) -> dict[str, np.ndarray]:
    """Every ingested event as the models see it (scaled, ordered, padded to 801 particles)."""
    parts = sorted(Path(ingested_events).rglob("*.parquet"))
    tables = [pq.read_table(p, columns=["event_id", "hfeatures", "lfeatures"]) for p in parts]
    hlf, gru = zip(*[model_inputs(t, scaler)[:2] for t in tables], strict=True)
    return {
        "HLF_input": np.concatenate(hlf),
        "GRU_input": np.concatenate(gru).reshape(-1, schema.LLF_ROWS, schema.LLF_FEATURES),
    }


@pytest.mark.parametrize("model", ["hlf", "gru", "inclusive"])
def test_exported_models_score_real_events_as_keras_does(trained, ingested_events, tmp_path, model):
    import keras
    import tensorflow as tf

    from tasks.learning.export import keras_probabilities

    done = export(trained / model, tmp_path / "export")
    out = Path(done["output"])
    assert {p.name for p in out.iterdir()} == {
        "saved_model",
        "model.onnx",
        "scaler.json",
        "features.json",
        "training.json",
    }
    assert (out / "scaler.json").read_bytes() == (trained / model / "scaler.json").read_bytes()
    features = json.loads((out / "features.json").read_text())
    names = {"hlf": ["HLF_input"], "gru": ["GRU_input"], "inclusive": ["GRU_input", "HLF_input"]}[model]
    assert list(features["inputs"]) == names
    assert features["output"]["classes"] == list(schema.CLASS_NAMES)
    if "HLF_input" in names:
        assert features["inputs"]["HLF_input"]["features"] == list(schema.HLF_COLUMNS)
    if "GRU_input" in names:
        assert features["inputs"]["GRU_input"] == {"shape": [None, None, 19], "features": list(schema.LLF_COLUMNS)}
    assert features["parity"]["max_abs_difference"] <= 1e-5

    events = _events(ingested_events, Scaler.load(out / "scaler.json"))
    n = len(events["HLF_input"])
    assert n > 50  # the selected events of the 150 generated
    reference = keras_probabilities(keras.models.load_model(trained / model / "model.keras"), model, events)
    session = onnx_session(out / "model.onnx")
    assert [i.name for i in session.get_inputs()] == names
    in_onnx = onnx_probabilities(session, events)
    assert in_onnx.shape == (n, 3)
    assert np.abs(in_onnx - reference).max() <= 1e-5
    assert np.allclose(in_onnx.sum(axis=1), 1.0, atol=1e-5)
    assert reference.std(axis=0).max() > 0  # the events are told apart: parity is not of constants
    serve = tf.saved_model.load(str(out / "saved_model")).signatures["serve"]
    served = serve(**{n: tf.constant(events[n]) for n in names})
    assert np.abs(next(iter(served.values())).numpy() - reference).max() <= 1e-5


def test_topo_predict_with_onnx_imports_no_tensorflow_and_matches_keras(trained, generated_sample, tmp_path):
    """The whole scoring path from a ROOT file, in a fresh interpreter that only has ONNX Runtime to use."""
    out = tmp_path / "inclusive-export"
    export(trained / "inclusive", out)
    root_file = sorted(Path(generated_sample).rglob("*.root"))[0]
    script = (
        "import json, sys\n"
        "from tasks.cli import main\n"
        f"code = main(['predict', '--onnx', {str(out)!r}, '--input', {str(root_file)!r}, "
        f"'--output', {str(tmp_path / 'onnx.parquet')!r}])\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'tf2onnx') if m in sys.modules)\n"
        "print('HEAVY', json.dumps(heavy))\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.split("HEAVY", 1)[1]) == []
    from tasks.learning.predict import predict

    predict(root_file, tmp_path / "keras.parquet", trained / "inclusive")
    onnx, keras = (pq.read_table(tmp_path / f"{n}.parquet") for n in ("onnx", "keras"))
    assert onnx.num_rows == keras.num_rows > 0
    assert onnx.column("event_id").to_pylist() == keras.column("event_id").to_pylist()
    for column in ("p_qcd", "p_ttbar", "p_wjets"):
        assert np.abs(np.asarray(onnx.column(column)) - np.asarray(keras.column(column))).max() <= 1e-5
    about = json.loads(onnx.schema.metadata[b"topo"])
    assert about["runtime"] == "onnxruntime" and about["model"] == "inclusive"


def test_export_refuses_what_it_cannot_export_faithfully(trained, tmp_path, monkeypatch):
    with pytest.raises(ExportError, match=r"model\.keras is missing"):
        export(tmp_path, tmp_path / "nothing")
    # An earlier export stays whole when a new one fails its parity check.
    earlier = tmp_path / "hlf-export"
    export(trained / "hlf", earlier)
    before = (earlier / "model.onnx").read_bytes()
    monkeypatch.setattr(export_module, "PARITY_TOLERANCE", -1.0)  # no difference can pass
    with pytest.raises(ExportError, match="ONNX and Keras disagree"):
        export(trained / "hlf", earlier)
    assert (earlier / "model.onnx").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hlf-export"]  # no half-written directory left
