"""Evaluation on the test split: what a physicist wants to see of a classifier.

``evaluate(model_dir, ...)`` scores the test split in its stored order
(tasks.learning.scoring) and writes into ``<output>/``:

- ``metrics.json``: per class one-vs-rest AUC (and the ROC curve points),
  accuracy, the row-normalised confusion matrix, and for tt̄ and W+jets the
  background false-positive rate at the threshold that keeps 99 % of that
  signal (the trigger use: keep ~all interesting events, reject what you can);
- ``roc.png``, ``confusion.png``, ``curves.png`` (loss and accuracy per epoch,
  train and validation, from the training history);
- ``report.html``: all of it on one page, with the published AUCs next to ours
  (tasks.learning.records), labelled as measured on different data.

The metrics themselves are tasks.learning.metrics.
"""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path

import numpy as np

from tasks.core import schema
from tasks.core.storage import atomic_directory, read_json, write_json
from tasks.learning.metrics import physics_metrics
from tasks.learning.records import MODELS
from tasks.learning.scoring import predict_split, predictions_table

log = logging.getLogger(__name__)

LABELS = {"qcd": "QCD", "ttbar": "tt̄", "wjets": "W+jets"}


def evaluate(
    model_dir: str | Path, output: str | Path, fmt: str | None = None, test_path: str | Path | None = None
) -> dict:
    """Score the model's test split and write metrics, plots, the report and
    ``predictions.parquet`` (the scores per event, for the predictions contract)."""
    import pyarrow.parquet as pq

    from tasks.datasets.readers import FeedError, feed_event_ids

    model_dir, output = Path(model_dir), Path(output)
    training = read_json(model_dir / "training.json")
    fmt = fmt or training.get("feed_format") or training["settings"]["feed"]
    test_path = Path(test_path) if test_path else Path(training["feed"]["test"])
    labels, probabilities = predict_split(model_dir, test_path, fmt)
    ids = feed_event_ids(test_path, fmt)
    if len(ids) != len(labels):
        raise FeedError(f"{test_path}: read {len(labels)} events but found {len(ids)} event identities")
    metrics = physics_metrics(labels, probabilities)
    metrics.update(
        model=training["model"],
        model_dir=str(model_dir),
        test_data=str(test_path),
        feed=fmt,
        epochs=training["epochs_run"],
        train_events=training["train_events"],
    )
    history = read_json(model_dir / "history.json")
    with atomic_directory(output) as tmp:
        write_json(tmp / "metrics.json", metrics)
        np.savez_compressed(tmp / "scores.npz", labels=labels, probabilities=probabilities)
        pq.write_table(predictions_table(ids, probabilities, labels), tmp / "predictions.parquet")
        _plot_roc(metrics, tmp / "roc.png")
        _plot_confusion(metrics, tmp / "confusion.png")
        _plot_curves(history, tmp / "curves.png")
        (tmp / "report.html").write_text(_report(metrics, history, tmp))
    aucs = ", ".join(f"{LABELS[n]} {c['auc']:.4f}" for n, c in metrics["classes"].items())
    log.info(
        "evaluated %s on %d test events: accuracy %.4f, AUC %s -> %s",
        training["model"],
        metrics["events"],
        metrics["accuracy"],
        aucs,
        output,
    )
    return metrics


# --- plots ------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    import matplotlib.pyplot as plt

    return plt


def _plot_roc(metrics: dict, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, c in metrics["classes"].items():
        ax.plot(c["roc"]["fpr"], c["roc"]["tpr"], label=f"{LABELS[name]} vs rest (AUC = {c['auc']:.4f})")
    ax.plot([0, 1], [0, 1], ls=":", c="grey")
    ax.set(
        xlabel="false-positive rate (background efficiency)",
        ylabel="true-positive rate (signal efficiency)",
        title=f"ROC, {metrics['model']} classifier, {metrics['events']} test events",
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_confusion(metrics: dict, path: Path) -> None:
    plt = _pyplot()
    matrix = np.asarray(metrics["confusion_matrix"])
    names = [LABELS[n] for n in schema.CLASS_NAMES]
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j, i, f"{matrix[i, j]:.3f}", ha="center", va="center", color="white" if matrix[i, j] > 0.5 else "black"
            )
    ax.set(
        xticks=range(len(names)),
        yticks=range(len(names)),
        xticklabels=names,
        yticklabels=names,
        xlabel="predicted",
        ylabel="true",
        title="confusion matrix (rows sum to 1)",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_curves(history: dict, path: Path) -> None:
    plt = _pyplot()
    epochs = sorted(history, key=int)
    x = [int(e) + 1 for e in epochs]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, label in (("", "train"), ("val_", "validation (test split)")):
            ax.plot(x, [history[e].get(prefix + metric, np.nan) for e in epochs], marker="o", label=label)
        ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _image(path: Path) -> str:
    return f'<img alt="{path.stem}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'


def _report(metrics: dict, history: dict, folder: Path) -> str:
    model = metrics["model"]
    record = MODELS.get(model)
    published = (record.published_auc if record is not None else None) or {}
    rows = []
    for name, c in metrics["classes"].items():
        fpr = c.get("background_fpr_at_99pct_signal")
        rows.append(
            f"<tr><td>{LABELS[name]}</td><td>{c['auc']:.4f}</td><td>{published.get(name, '—')}</td>"
            f"<td>{'—' if fpr is None else f'{fpr:.4f}'}</td></tr>"
        )
    confusion = "".join(
        f"<tr><th>{LABELS[n]}</th>" + "".join(f"<td>{v:.3f}</td>" for v in row) + "</tr>"
        for n, row in zip(schema.CLASS_NAMES, metrics["confusion_matrix"], strict=True)
    )
    last = history[max(history, key=int)] if history else {}
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(model)} classifier: evaluation</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}img{{max-width:100%}}.note{{color:#555}}</style></head>
<body>
<h1>{html.escape(model)} classifier: evaluation on the test split</h1>
<p>{metrics["events"]} test events, {metrics["train_events"]} training events, {metrics["epochs"]} epochs,
feed {html.escape(metrics["feed"])}. Accuracy <b>{metrics["accuracy"]:.4f}</b>; final training loss
{last.get("loss", float("nan")):.4f}, validation loss {last.get("val_loss", float("nan")):.4f}.</p>
<h2>Per class (one vs rest)</h2>
<table><tr><th>class</th><th>AUC (ours)</th><th>AUC published</th><th>background FPR at 99 % signal efficiency</th></tr>
{"".join(rows)}</table>
<p class="note">Published: Nguyen et al. 2018 (SparkDLTrigger), {html.escape(model)}-type model trained on 3.4 M
fully simulated events. <b>Measured on different data</b>: ours come from this pipeline's input (by default the
generated sample), so the numbers compare the method, not the detector physics.</p>
{_image(folder / "roc.png")}
<h2>Confusion matrix (row-normalised: true class → predicted)</h2>
<table><tr><th></th>{"".join(f"<th>{LABELS[n]}</th>" for n in schema.CLASS_NAMES)}</tr>{confusion}</table>
{_image(folder / "confusion.png")}
<h2>Training curves</h2>
{_image(folder / "curves.png")}
<p class="note">Model: {html.escape(metrics["model_dir"])}; test data: {html.escape(metrics["test_data"])}.</p>
</body></html>
"""
