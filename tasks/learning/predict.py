"""Scoring new events with a trained, registered or exported model.

The model: a directory of ``topo train`` (Keras) or of ``topo export``
(ONNX Runtime, which scores without importing TensorFlow: what a machine
with only onnxruntime, numpy, pyarrow and uproot can run).

Input: ROOT files of any event source (Delphes, CMS PFNano, CMS NanoAOD;
detected from the files, one source per call) as a file, a directory or a
glob, or an ingested Parquet dataset. ROOT input goes through the same
selection and features as ingestion; events without particles (plain
NanoAOD) can only be scored by a model of the high-level features; every event then goes through the same ordering and scaling as the
training data (tasks.datasets.prepare.model_inputs), with the scaler stored with the
model. Output: one Parquet file of ``event_id``, ``p_qcd``, ``p_ttbar``,
``p_wjets`` and ``predicted`` (class name), written atomically, whose Parquet
metadata (key ``topo``) names the model, the event source and the data config.

Runs in one process, chunk by chunk; for large inputs, ingest them on Dask
first (``topo ingest``) and predict on the Parquet dataset.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tasks.core import schema
from tasks.core.errors import SettingsError, TopoError
from tasks.core.storage import read_json, temporary_sibling
from tasks.events.sources import DEFAULT_SOURCE, detect_source, get_source, input_files, is_input_file, one_source
from tasks.learning.scoring import predictions_table

if TYPE_CHECKING:
    from tasks.contracts import ValidationSettings

log = logging.getLogger(__name__)


def _input_files(source: str | Path, event_source: str = DEFAULT_SOURCE) -> tuple[str, list[str]]:
    """(the source's file type, e.g. 'root', or 'parquet'; files) of an input given as a file, a directory or a glob:
    raw event files of ``event_source`` (its file patterns) or an ingested Parquet dataset."""
    text = str(source)
    if glob.has_magic(text):
        files = sorted(glob.glob(text, recursive=True))
    elif Path(text).is_dir():
        files = sorted({*input_files(text, event_source), *(str(p) for p in Path(text).rglob("*.parquet"))})
    else:
        files = [text] if Path(text).exists() else []
    if not files:
        raise SettingsError(f"no input to score at {source} (expected .root files or an ingested .parquet dataset)")
    raw = {f for f in files if is_input_file(f, event_source)}
    parquet = {f for f in files if f.endswith(".parquet")}
    if len(raw | parquet) < len(files) or (raw and parquet):
        kinds = {Path(f).suffix for f in files}
        raise SettingsError(
            f"{source}: mix ROOT and Parquet inputs in separate calls (found {', '.join(sorted(kinds))})"
        )
    return (get_source(event_source).file_type.lower() if raw else "parquet"), files


def _ingest_events(
    files: list[str], workdir: Path, chunk: int, event_source: str, data_config: str | None = None
) -> list[str]:
    """Selection and features of raw event files into Parquet parts (as ingestion does)."""
    from tasks.events.ingest import plan_chunks, process_chunk

    reader = get_source(event_source, data_config)
    for path in files:
        n = reader.inspect(path)  # a bad file stops scoring with a clear error naming it
        for start, stop in plan_chunks(n, chunk):
            result = process_chunk(
                "predict", 0, path, start, stop, str(workdir), source=event_source, data_config=data_config
            )
            if "error" in result:
                raise TopoError(f"{path}: {result['error']}")
    return sorted(str(p) for p in workdir.glob("*.parquet"))


def _origin(kind: str, files: list[str], event_source: str | None, data_config: str | None) -> dict:
    """The event source, config and particle content of the input."""
    from tasks.events.ingest import part_origin
    from tasks.events.sources import source_of_config

    if kind == "parquet":
        origins = {f: part_origin(f) for f in files}
        # parts written before parts said so are Delphes with particles
        source = one_source({f: o.get("source", DEFAULT_SOURCE) for f, o in origins.items()})
        particles = all(o.get("particle_content", True) for o in origins.values())
        return {"source": source, "data_config": None, "particle_content": particles}
    if data_config is not None:
        event_source = event_source or source_of_config(data_config)
    source = event_source or one_source({f: detect_source(f) for f in files})
    config = get_source(source, data_config).config
    return {"source": source, "data_config": config.path, "particle_content": config.particle_content}


def check_particle_content(model: str, inputs: str, origin: dict, where: str | Path) -> None:
    """A model of particles cannot score events that have none (plain NanoAOD): say so, naming the input."""
    from tasks.datasets.readers import input_names

    if not origin["particle_content"] and "GRU_input" in input_names(inputs):
        raise SettingsError(
            f"{where}: the {origin['source']} events have no particle content (no PF candidates), "
            f"and model {model!r} reads the particle sequence; score them with an HLF model"
        )


def scorer(model_dir: Path, inputs: str) -> tuple[str, Callable[[dict[str, np.ndarray]], np.ndarray]]:
    """(runtime, score) for a model directory: ONNX Runtime for a directory of
    topo export (model.onnx; TensorFlow is never imported), Keras for one of
    topo train (model.keras). ``score`` maps named, scaled inputs to class
    probabilities."""
    from tasks.learning.export import keras_probabilities, onnx_probabilities, onnx_session

    if (model_dir / "model.onnx").exists():
        session = onnx_session(model_dir / "model.onnx")
        return "onnxruntime", lambda events: onnx_probabilities(session, events)
    if not (model_dir / "model.keras").exists():
        raise SettingsError(f"{model_dir} holds neither model.keras (topo train) nor model.onnx (topo export)")
    import keras

    import tasks.learning.models  # noqa: F401  registers the custom layers

    model = keras.models.load_model(model_dir / "model.keras")
    return "keras", lambda events: keras_probabilities(model, inputs, events)


def predict(
    source: str | Path,
    output: str | Path,
    model_dir: str | Path,
    batch_size: int = 1024,
    chunk: int = 1000,
    contracts: ValidationSettings | None = None,
    event_source: str | None = None,
    data_config: str | None = None,
) -> dict:
    """Score every selected event of ``source`` with the model in ``model_dir``;
    with ``contracts``, the scores must pass the predictions contract before
    ``output`` is written. ROOT files are read as ``event_source`` (default:
    detected) and ``data_config`` (default: the source's own) say."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tasks.datasets.prepare import model_inputs
    from tasks.datasets.scaling import Scaler

    model_dir, output = Path(model_dir), Path(output)
    kind, files = _input_files(source, event_source or DEFAULT_SOURCE)
    origin = _origin(kind, files, event_source, data_config)
    training = read_json(model_dir / "training.json")
    check_particle_content(training["model"], training["inputs"], origin, source)
    scaler = Scaler.load(model_dir / "scaler.json")
    runtime, score = scorer(model_dir, training["inputs"])
    ids, probabilities = [], []
    with tempfile.TemporaryDirectory(prefix="topo-predict-") as tmp:
        parts = files if kind == "parquet" else _ingest_events(files, Path(tmp), chunk, origin["source"], data_config)
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches(
                batch_size=batch_size, columns=["event_id", "hfeatures", "lfeatures"]
            ):
                table = pa.Table.from_batches([batch])
                hlf, gru, _ = model_inputs(table, scaler)
                gru = gru.reshape(-1, schema.LLF_ROWS, schema.LLF_FEATURES)
                probabilities.append(score({"GRU_input": gru, "HLF_input": hlf}))
                ids += table.column("event_id").to_pylist()
    p = np.concatenate(probabilities) if probabilities else np.zeros((0, len(schema.CLASS_NAMES)), np.float32)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = temporary_sibling(output, "tmp")  # the file keeps its name there: reports and quarantine show it
    staging.mkdir()
    try:
        about = {"model": training["model"], "model_dir": str(model_dir.resolve()), "runtime": runtime, **origin}
        table = predictions_table(ids, p)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"topo": json.dumps(about)})
        pq.write_table(table, staging / output.name)
        if contracts is not None:  # the predictions contract gates the output: a failing file never replaces it
            from tasks.contracts import validate

            validate("predictions", staging / output.name, contracts)
        os.replace(staging / output.name, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    counts = {name: int((p.argmax(axis=1) == c).sum()) for c, name in enumerate(schema.CLASS_NAMES)} if len(p) else {}
    log.info(
        "scored %d events from %d %s file(s) with %s (%s) -> %s",
        len(ids),
        len(files),
        kind,
        training["model"],
        runtime,
        output,
    )
    return {
        "output": str(output),
        "events": len(ids),
        "model": training["model"],
        "runtime": runtime,
        "source": origin["source"],
        "data_config": origin["data_config"],
        "predicted_per_class": counts,
    }
