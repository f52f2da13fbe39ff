"""Training (resuming after a real kill) and evaluation, on the small prepared fixture."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from tasks.core.errors import SettingsError
from tasks.learning.evaluate import evaluate
from tasks.learning.metrics import physics_metrics
from tasks.learning.train import TrainSettings, parse_schedule, train
from tests.support.training import train_command


def test_physics_metrics_on_known_scores():
    labels = np.repeat([0, 1, 2], 200)
    perfect = np.eye(3)[labels] * 0.9 + 0.05
    m = physics_metrics(labels, perfect)
    assert m["accuracy"] == 1.0 and np.allclose(np.diag(m["confusion_matrix"]), 1.0)
    for name in ("qcd", "ttbar", "wjets"):
        assert m["classes"][name]["auc"] == 1.0
    assert m["classes"]["ttbar"]["background_fpr_at_99pct_signal"] == 0.0
    random = np.random.default_rng(0).dirichlet(np.ones(3), size=len(labels))
    m = physics_metrics(labels, random)
    assert all(abs(c["auc"] - 0.5) < 0.1 for c in m["classes"].values())
    assert m["classes"]["wjets"]["signal_efficiency"] >= 0.99
    assert m["classes"]["wjets"]["background_fpr_at_99pct_signal"] > 0.9  # a random score keeps everything
    np.testing.assert_allclose(np.sum(m["confusion_matrix"], axis=1), 1.0)


def test_train_then_evaluate(prepared, tmp_path, caplog):
    out, summary, _ = prepared
    caplog.set_level(logging.INFO, logger="tasks")
    settings = TrainSettings(
        model="hlf", feed="petastorm", epochs=3, batch_size=8, learning_rates=parse_schedule("0:1e-2,2:1e-3")
    )
    result = train(out, tmp_path / "hlf", settings)
    assert [f"epoch {i}/3" in caplog.text for i in (1, 2, 3)] == [True] * 3  # streamed per epoch
    history = json.loads((tmp_path / "hlf" / "history.json").read_text())
    assert sorted(history) == ["0", "1", "2"]
    assert [round(history[e]["learning_rate"], 6) for e in ("0", "1", "2")] == [1e-2, 1e-2, 1e-3]
    assert result["epochs_run"] == 3 and result["resumed_after_epochs"] == 0
    assert (tmp_path / "hlf" / "scaler.json").read_bytes() == (out / "scaler.json").read_bytes()
    assert not (tmp_path / "hlf.backup").exists() and not (tmp_path / "hlf.progress.json").exists()

    metrics = evaluate(tmp_path / "hlf", tmp_path / "eval")
    assert metrics["events"] == summary["test"]["events"]
    scores = np.load(tmp_path / "eval" / "scores.npz")
    assert metrics["accuracy"] == pytest.approx((scores["probabilities"].argmax(1) == scores["labels"]).mean())
    assert set(metrics["classes"]) == {"qcd", "ttbar", "wjets"}
    assert "background_fpr_at_99pct_signal" in metrics["classes"]["ttbar"]
    report = (tmp_path / "eval" / "report.html").read_text()
    assert report.count("<img") == 3 and "Measured on different data" in report and "0.985" in report
    for plot in ("roc.png", "confusion.png", "curves.png"):
        assert (tmp_path / "eval" / plot).read_bytes()[:4] == b"\x89PNG"


def test_hlf_models_read_the_hlf_only_feed_and_score_as_from_the_full_events(prepared, tmp_path, dask_client, caplog):
    """With the feeds written, an HLF model trains and is evaluated on the
    HLF-only feed, and scores its test events exactly as when they are read
    from the full prepared events; a feed from an earlier preparation is not used."""
    from tasks.datasets.feeds import write_feeds

    out, summary, _ = prepared
    feeds = tmp_path / "feeds"
    write_feeds(out, feeds, dask_client, compression="none")
    settings = TrainSettings(model="hlf", feed="tfrecord", epochs=2, batch_size=8)
    result = train(out, tmp_path / "hlf", settings, tfrecord=feeds)
    assert result["feed_format"] == "hlf" and result["feed"]["train"] == str(feeds / "hlf" / "train")
    metrics = evaluate(tmp_path / "hlf", tmp_path / "eval")
    assert metrics["feed"] == "hlf" and metrics["events"] == summary["test"]["events"]
    evaluate(tmp_path / "hlf", tmp_path / "eval-full", fmt="petastorm", test_path=out / "test")
    hlf_only, full = (np.load(tmp_path / e / "scores.npz") for e in ("eval", "eval-full"))
    np.testing.assert_array_equal(hlf_only["labels"], full["labels"])
    np.testing.assert_allclose(hlf_only["probabilities"], full["probabilities"], atol=1e-6)

    hlf_summary = feeds / "hlf" / "_summary.json"
    stale = json.loads(hlf_summary.read_text())
    stale["scaler"]["sha256"] = "0" * 64  # as if the data had been prepared again since
    hlf_summary.write_text(json.dumps(stale))
    caplog.set_level(logging.WARNING, logger="tasks")
    again = train(out, tmp_path / "hlf-again", TrainSettings(model="hlf", feed="tfrecord", epochs=1), tfrecord=feeds)
    assert again["feed_format"] == "tfrecord" and "earlier preparation" in caplog.text


@pytest.mark.parametrize("model", ["gru", "inclusive"])  # the inclusive model has dropout: its masks must repeat
def test_killed_training_resumes_and_matches_an_uninterrupted_run(prepared, tmp_path, model):
    out, _, _ = prepared
    model_dir = tmp_path / model
    progress = tmp_path / f"{model}.progress.json"
    process = subprocess.Popen(
        train_command(out, model_dir, model=model),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if progress.exists() and len(json.loads(progress.read_text() or "{}")) >= 2:
            break
        time.sleep(0.02)
    assert process.poll() is None, (
        "training ended before it could be killed:\n" + process.stdout.read().decode()[-3000:]
    )
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    done_when_killed = len(json.loads(progress.read_text()))
    assert 2 <= done_when_killed < 6 and not model_dir.exists()  # nothing half-written
    assert (tmp_path / f"{model}.backup").exists()

    resumed = subprocess.run(
        train_command(out, model_dir, model=model),
        capture_output=True,
        text=True,
        env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads(resumed.stdout)
    assert result["resumed_after_epochs"] >= done_when_killed - 1  # the last backup is at most one epoch behind
    assert result["epochs_run"] == 6
    assert f"resuming {model} from its backup" in resumed.stderr
    assert "epoch 1/6" not in resumed.stderr  # did not start over

    straight = train(
        out,
        tmp_path / "straight",
        TrainSettings(model=model, feed="petastorm", epochs=6, batch_size=4, learning_rates=parse_schedule("3e-3")),
    )
    # Same data order per epoch, weights and optimizer restored: the same model.
    assert result["final"]["val_loss"] == pytest.approx(straight["final"]["val_loss"], rel=1e-4, abs=1e-5)
    assert result["final"]["loss"] == pytest.approx(straight["final"]["loss"], rel=1e-4, abs=1e-5)


def test_mixed_precision_builds_in_low_precision_and_leaves_the_global_policy_alone(prepared, tmp_path):
    import keras

    result = train(
        prepared[0],
        tmp_path / "mp",
        TrainSettings(model="hlf", feed="petastorm", epochs=1, batch_size=16, mixed_precision=True),
    )
    model = keras.models.load_model(tmp_path / "mp" / "model.keras")
    assert model.layers[1].dtype_policy.compute_dtype == "bfloat16"  # no GPU here: bfloat16 on the CPU
    assert model.layers[-1].dtype_policy.compute_dtype == "float32"  # probabilities stay float32
    assert keras.mixed_precision.global_policy().name == "float32"
    assert np.isfinite(result["final"]["loss"])


@pytest.mark.parametrize("xla, expected", [("on", True), ("off", False)])
def test_xla_is_asked_of_keras_and_compiles_trimmed_batches(prepared, tmp_path, monkeypatch, xla, expected):
    import keras

    asked = []
    compile_ = keras.Model.compile

    def spy(self, *args, **kwargs):
        asked.append(kwargs.get("jit_compile"))
        return compile_(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "compile", spy)
    settings = TrainSettings(model="gru", feed="petastorm", epochs=1, batch_size=4, bucket_batches=4, xla=xla)
    result = train(prepared[0], tmp_path / xla, settings)
    assert asked == [expected]
    assert np.isfinite(result["final"]["loss"]) and result["settings"]["xla"] == xla


def test_training_on_bucketed_batches_learns_and_repeats_for_a_seed(prepared, tmp_path):
    """Batches cut to their longest sequence train the same model shape; the
    same seed gives the same run, and the batches are not the padded ones."""
    settings = TrainSettings(model="gru", feed="petastorm", epochs=2, batch_size=4, bucket_batches=3)
    plain = TrainSettings(model="gru", feed="petastorm", epochs=2, batch_size=4, bucket_batches=0)
    assert TrainSettings().bucket_batches > 0  # trimmed batches are the default

    def losses(name, options):
        train(prepared[0], tmp_path / name, options)
        history = json.loads((tmp_path / name / "history.json").read_text())
        return [history[e]["loss"] for e in sorted(history, key=int)]

    first, again, padded = losses("a", settings), losses("b", settings), losses("c", plain)
    assert np.all(np.isfinite(first))
    assert first == again
    assert first != padded  # other batches (sorted windows)


@pytest.mark.parametrize("fmt", ["petastorm", "tfrecord"])
def test_bucketed_evaluation_scores_every_event_in_stored_order_as_padded(prepared, tmp_path, dask_client, fmt):
    """Scoring in sorted, trimmed windows puts the scores back in the stored
    order: the same labels and, within 1e-6, the same probabilities as 801-row
    batches read in order; the batches really were trimmed and reordered."""
    from tasks.datasets.feeds import write_feeds
    from tasks.datasets.readers import open_feed
    from tasks.learning.scoring import predict_split

    out, summary, _ = prepared
    feeds = tmp_path / "feeds"
    if fmt == "tfrecord":
        write_feeds(out, feeds, dask_client, compression="none")
    test = (out if fmt == "petastorm" else feeds) / "test"
    train(out, tmp_path / "inclusive", TrainSettings(model="inclusive", feed="petastorm", epochs=1, batch_size=4))
    labels, padded = predict_split(tmp_path / "inclusive", test, fmt, batch_size=2, bucket_batches=0)
    bucketed_labels, bucketed = predict_split(tmp_path / "inclusive", test, fmt, batch_size=2, bucket_batches=3)
    assert len(labels) == summary["test"]["events"]
    np.testing.assert_array_equal(bucketed_labels, labels)
    np.testing.assert_allclose(bucketed, padded, atol=1e-6, rtol=0)
    with open_feed(test, fmt, "inclusive", 2, bucket_batches=3, positions=True) as data:
        batches = [(x[0].shape[1], position.numpy()) for x, _, position in data]
    assert min(rows for rows, _ in batches) < 801
    assert sorted(np.concatenate([p for _, p in batches]).tolist()) == list(range(len(labels)))
    assert np.concatenate([p for _, p in batches]).tolist() != list(range(len(labels)))  # sorted, not stored


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "cnn"}, "unknown model"),
        ({"bucket_batches": -1}, "bucket_batches must be at least 0"),
        ({"feed": "hdf5"}, "unknown feed format"),
        ({"xla": "yes"}, "xla must be one of auto, on, off"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"learning_rates": ((1, 1e-3),)}, "must start at epoch 0"),
    ],
)
def test_bad_training_settings(kwargs, message):
    with pytest.raises(SettingsError, match=message):
        TrainSettings(**kwargs)


def test_bad_schedule_text_and_missing_tfrecord_dir(prepared, tmp_path):
    with pytest.raises(SettingsError, match="must look like"):
        parse_schedule("fast")
    with pytest.raises(SettingsError, match="needs the TFRecord directory"):
        train(prepared[0], tmp_path / "x", TrainSettings(model="hlf", feed="tfrecord"))
