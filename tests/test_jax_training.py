"""Keras on JAX: `topo train` fed by the NumPy feed, alone and as two data-parallel worker processes.

Every run is a real `topo train` process with KERAS_BACKEND=jax (the test
process itself runs Keras on TensorFlow, which cannot switch backends)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tasks.core.errors import TopoError
from tasks.learning.launch import free_ports, train_processes
from tasks.learning.train import TrainSettings, parse_schedule
from tests.support.training import train_command

pytest.importorskip("jax")  # the test extra

EPOCHS = 3


def _command(prepared_dir, output, *extra, model="inclusive"):
    options = dict(model=model, feed="numpy", epochs=EPOCHS, batch_size=8, rate="1e-2")
    return train_command(prepared_dir, output, "--seed", "4", *extra, **options)


ENV = os.environ | {"KERAS_BACKEND": "jax", "TOPO_WORKER_HEARTBEAT_S": "10", "TF_CPP_MIN_LOG_LEVEL": "3"}


def _workers(prepared_dir, output, cluster):
    return [
        subprocess.Popen(
            _command(prepared_dir, output, "--cluster", cluster, "--worker-index", str(i), model="gru"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for i in range(2)
    ]


def _weights(model_dir):
    import keras

    return keras.saving.load_model(model_dir / "model.keras", compile=False).get_weights()


@pytest.fixture(scope="module")
def single(prepared, tmp_path_factory):
    out, _, _ = prepared
    output = tmp_path_factory.mktemp("jax") / "inclusive"
    run = subprocess.run(_command(out, output), capture_output=True, text=True, env=ENV, timeout=400)
    assert run.returncode == 0, run.stderr[-3000:]
    return output, json.loads(run.stdout), run.stderr


def test_topo_train_runs_on_jax_from_the_numpy_feed_and_tensorflow_scores_the_model(single, tmp_path):
    from tasks.learning.evaluate import evaluate

    output, result, log = single
    training = json.loads((output / "training.json").read_text())
    assert training["devices"]["backend"] == "jax" and training["reader"] == "numpy"
    assert training["feed_format"] == "petastorm", "the prepared Parquet, which evaluation reads with tf.data"
    history = json.loads((output / "history.json").read_text())
    assert history[str(EPOCHS - 1)]["loss"] < history["0"]["loss"], "it learns"
    assert "Keras on jax" in log and "NumPy batches" in log
    metrics = evaluate(output, tmp_path / "evaluation")  # Keras on TensorFlow, the tf.data reader
    assert metrics["train_events"] == training["train_events"]
    assert all(0.0 <= c["auc"] <= 1.0 for c in metrics["classes"].values())


@pytest.mark.slow
def test_two_workers_train_one_model_as_one_process_does_and_resume_after_a_kill(prepared, tmp_path):
    # The GRU: no dropout, whose masks depend on how a batch is split among devices.
    out, _, _ = prepared
    alone = subprocess.run(_command(out, tmp_path / "alone", model="gru"), capture_output=True, text=True, env=ENV)
    assert alone.returncode == 0, alone.stderr[-3000:]

    # Two workers, started by hand as on two machines; worker 1 is killed after its first
    # epoch: worker 0 fails (it does not wait forever) and nothing is half-written.
    cluster = ",".join(f"127.0.0.1:{p}" for p in free_ports(2))
    processes = _workers(out, tmp_path / "killed", cluster)
    progress = tmp_path / "killed.progress.json.worker1"
    deadline = time.time() + 300
    while time.time() < deadline and processes[1].poll() is None:
        if progress.exists() and len(json.loads(progress.read_text() or "{}")) >= 1:
            break
        time.sleep(0.05)
    assert processes[1].poll() is None, (
        "worker 1 ended before it could be killed: " + processes[1].stderr.read()[-2000:]
    )
    processes[1].send_signal(signal.SIGKILL)
    processes[1].wait()
    _, err = processes[0].communicate(timeout=120)
    assert processes[0].returncode != 0, "worker 0 carried on without worker 1"
    assert "heartbeat timeout" in err
    assert not (tmp_path / "killed").exists(), "nothing half-written"

    # Started again, by the launcher (topo train --processes, the DAG Param training_processes,
    # an Airflow retry): both workers resume from their backups and finish the training.
    launched = subprocess.run(
        _command(out, tmp_path / "killed", "--processes", "2", model="gru"), capture_output=True, text=True, env=ENV
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    result = json.loads(launched.stdout)
    assert len(result["workers"]) == 2 and result["output"] == str(tmp_path / "killed")
    assert result["devices"]["processes"] == 2 and result["devices"]["strategy"] == "DataParallel"
    assert result["resumed_after_epochs"] >= 1 and result["epochs_run"] == EPOCHS
    assert "[worker 0]" in launched.stderr and "worker 0 of 2" in launched.stderr
    assert "resuming gru from its backup" in launched.stderr
    other = json.loads((tmp_path / "killed.worker1" / "training.json").read_text())
    assert other["resumed_after_epochs"] >= 1 and other["epochs_run"] == EPOCHS
    chief = _weights(tmp_path / "killed")
    for a, b in zip(chief, _weights(tmp_path / "killed.worker1"), strict=True):
        np.testing.assert_array_equal(a, b)  # one model, replicated
    # Data parallel over two processes, killed and resumed, is the training of one process.
    for a, b in zip(chief, _weights(tmp_path / "alone"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    history = json.loads((tmp_path / "killed" / "history.json").read_text())
    assert history[str(EPOCHS - 1)]["loss"] < history["0"]["loss"]


def test_the_gpu_check_trains_where_tensorflow_cannot_be_imported(tmp_path):
    # A GPU host has JAX, NumPy and pyarrow but no TensorFlow: a `tensorflow` that fails to import stands in.
    guard = tmp_path / "no-tensorflow" / "tensorflow"
    guard.mkdir(parents=True)
    (guard / "__init__.py").write_text('raise ImportError("no TensorFlow on this host")\n')
    output = tmp_path / "gpu_check.json"
    run = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--events", "96", "--batch-size", "16", "--output", str(output)],
        capture_output=True,
        text=True,
        env=ENV | {"PYTHONPATH": str(guard.parent)},
        cwd=Path(__file__).resolve().parents[1],
        timeout=400,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result == json.loads(run.stdout)
    assert result["machine"]["platform"] == "cpu" and result["events"] == 96 and result["made_up"]
    assert [e["epoch"] for e in result["epochs"]] == [1, 2]
    assert all(e["events_per_s"] > 0 and np.isfinite(e["loss"]) for e in result["epochs"])
    assert 0.4 < result["rows_kept"] < 0.8, "trimmed batches keep about 60 % of the 801 rows"
    assert result["steady_events_per_s"] == result["epochs"][1]["events_per_s"]


def test_the_launcher_stops_and_names_a_failed_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("TOPO_WORKER_HEARTBEAT_S", "10")
    settings = TrainSettings(model="gru", feed="numpy", epochs=1, learning_rates=parse_schedule("1e-2"))
    with pytest.raises(TopoError, match=r"(?s)training worker \d of 2 failed .*resume from their backups.*no-such-dir"):
        train_processes(tmp_path / "no-such-dir", tmp_path / "model", settings, processes=2)
    assert not (tmp_path / "model").exists()
