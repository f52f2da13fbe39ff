"""Scoring new events with a trained or registered model.

Input: Delphes ROOT files (a file, a directory, a glob) or an ingested Parquet
dataset. ROOT input goes through the same selection and features as
ingestion; every event then goes through the same ordering and scaling as the
training data (tasks.datasets.prepare.model_inputs), with the scaler stored with the
model. Output: one Parquet file of ``event_id``, ``p_qcd``, ``p_ttbar``,
``p_wjets`` and ``predicted`` (class name), written atomically.

Runs in one process, chunk by chunk; for large inputs, ingest them on Dask
first (``topo ingest``) and predict on the Parquet dataset.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tasks.core import schema
from tasks.core.errors import SettingsError, TopoError
from tasks.core.storage import read_json, temporary_sibling
from tasks.events.sources import DEFAULT_SOURCE, get_source, input_files, is_input_file
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


def _ingest_events(files: list[str], workdir: Path, chunk: int, event_source: str = DEFAULT_SOURCE) -> list[str]:
    """Selection and features of raw event files into Parquet parts (as ingestion does)."""
    from tasks.events.ingest import plan_chunks, process_chunk

    reader = get_source(event_source)
    for path in files:
        n = reader.inspect(path)  # a bad file stops scoring with a clear error naming it
        for start, stop in plan_chunks(n, chunk):
            result = process_chunk("predict", 0, path, start, stop, str(workdir), source=event_source)
            if "error" in result:
                raise TopoError(f"{path}: {result['error']}")
    return sorted(str(p) for p in workdir.glob("*.parquet"))


def predict(
    source: str | Path,
    output: str | Path,
    model_dir: str | Path,
    batch_size: int = 1024,
    chunk: int = 1000,
    contracts: ValidationSettings | None = None,
    event_source: str = DEFAULT_SOURCE,
) -> dict:
    """Score every selected event of ``source`` with the model in ``model_dir``;
    with ``contracts``, the scores must pass the predictions contract before
    ``output`` is written."""
    import keras
    import pyarrow as pa
    import pyarrow.parquet as pq

    import tasks.learning.models  # noqa: F401  registers the custom layers
    from tasks.datasets.prepare import model_inputs
    from tasks.datasets.readers import model_input
    from tasks.datasets.scaling import Scaler

    model_dir, output = Path(model_dir), Path(output)
    kind, files = _input_files(source, event_source)
    training = read_json(model_dir / "training.json")
    scaler = Scaler.load(model_dir / "scaler.json")
    model = keras.models.load_model(model_dir / "model.keras")
    ids, probabilities = [], []
    with tempfile.TemporaryDirectory(prefix="topo-predict-") as tmp:
        parts = files if kind == "parquet" else _ingest_events(files, Path(tmp), chunk, event_source)
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches(
                batch_size=batch_size, columns=["event_id", "hfeatures", "lfeatures"]
            ):
                table = pa.Table.from_batches([batch])
                hlf, gru, _ = model_inputs(table, scaler)
                gru = gru.reshape(-1, schema.LLF_ROWS, schema.LLF_FEATURES)
                probabilities.append(np.asarray(model.predict_on_batch(model_input(training["inputs"], gru, hlf))))
                ids += table.column("event_id").to_pylist()
    p = np.concatenate(probabilities) if probabilities else np.zeros((0, len(schema.CLASS_NAMES)), np.float32)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = temporary_sibling(output, "tmp")  # the file keeps its name there: reports and quarantine show it
    staging.mkdir()
    try:
        pq.write_table(predictions_table(ids, p), staging / output.name)
        if contracts is not None:  # the predictions contract gates the output: a failing file never replaces it
            from tasks.contracts import validate

            validate("predictions", staging / output.name, contracts)
        os.replace(staging / output.name, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    counts = {name: int((p.argmax(axis=1) == c).sum()) for c, name in enumerate(schema.CLASS_NAMES)} if len(p) else {}
    log.info("scored %d events from %d %s file(s) with %s -> %s", len(ids), len(files), kind, training["model"], output)
    return {"output": str(output), "events": len(ids), "model": training["model"], "predicted_per_class": counts}
