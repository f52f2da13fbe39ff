"""Evaluation on the test split: what a physicist wants to see of a classifier.

``evaluate(model_dir, ...)`` scores the test split in its stored order and
writes into ``<output>/``:

- ``metrics.json``: per class one-vs-rest AUC (and the ROC curve points),
  accuracy, the row-normalised confusion matrix, and for tt̄ and W+jets the
  background false-positive rate at the threshold that keeps 99 % of that
  signal (the trigger use: keep ~all interesting events, reject what you can);
- ``roc.png``, ``confusion.png``, ``curves.png`` (loss and accuracy per epoch,
  train and validation, from the training history);
- ``report.html``: all of it on one page, with the published AUCs next to ours,
  labelled as measured on different data.
"""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path

import numpy as np

from tasks.core import schema
from tasks.datasets.scaling import Scaler, ScalerError
from tasks.core.storage import atomic_directory, read_json, write_json

log = logging.getLogger(__name__)

SIGNAL_EFFICIENCY = 0.99
SIGNALS = ("ttbar", "wjets")
PUBLISHED_AUC = {  # Nguyen et al. 2018, on 3.4 M simulated events (QCD, tt̄, W+jets)
    "hlf": {"qcd": 0.987, "ttbar": 0.985, "wjets": 0.981},
    "inclusive": {"qcd": 0.995, "ttbar": 0.997, "wjets": 0.995},
}
LABELS = {"qcd": "QCD", "ttbar": "tt̄", "wjets": "W+jets"}


def physics_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """Metrics of class probabilities (n, 3) against integer labels (n,)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    n_classes = len(schema.CLASS_NAMES)
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((n_classes, n_classes))
    np.add.at(confusion, (labels, predicted), 1)
    confusion = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    out: dict = {"events": int(len(labels)), "accuracy": float((predicted == labels).mean()),
                 "confusion_matrix": confusion.round(6).tolist(), "classes": {}}  # fmt: skip
    for c, name in enumerate(schema.CLASS_NAMES):
        is_class = labels == c
        score = probabilities[:, c]
        fpr, tpr, _ = roc_curve(is_class, score)
        entry = {"auc": float(roc_auc_score(is_class, score)), "roc": _thin(fpr, tpr)}
        if name in SIGNALS:
            # The score cut that keeps 99 % of the signal, and what it lets through of the rest.
            threshold = float(np.quantile(score[is_class], 1.0 - SIGNAL_EFFICIENCY, method="lower"))
            entry["threshold_at_99pct_signal"] = threshold
            entry["signal_efficiency"] = float((score[is_class] >= threshold).mean())
            entry["background_fpr_at_99pct_signal"] = float((score[~is_class] >= threshold).mean())
        out["classes"][name] = entry
    return out


def _thin(fpr: np.ndarray, tpr: np.ndarray, points: int = 200) -> dict:
    """At most ``points`` points of a ROC curve, enough to draw it."""
    idx = np.unique(np.linspace(0, len(fpr) - 1, min(points, len(fpr))).astype(int))
    return {"fpr": fpr[idx].round(6).tolist(), "tpr": tpr[idx].round(6).tolist()}


def predict_split(model_dir: Path, path: Path, fmt: str, batch_size: int = 1024,
                  data_scaler: Scaler | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(labels, probabilities) for a test split, in stored order.

    ``data_scaler`` is the scaler the split was prepared with; when the model
    was trained with another one (a champion from an earlier preparation),
    the inputs are mapped back and rescaled with the model's own statistics,
    so that both models are compared on the same events, each as it expects
    them.
    """
    import keras

    import tasks.learning.models  # noqa: F401  registers the custom layers
    from tasks.datasets.readers import open_feed

    training = read_json(model_dir / "training.json")
    model = keras.models.load_model(model_dir / "model.keras")
    own = Scaler.load(model_dir / "scaler.json") if (model_dir / "scaler.json").exists() else None
    if data_scaler is not None and own is None:
        raise ScalerError(f"{model_dir} has no scaler (trained on an external, already scaled dataset): "
                          "it cannot be compared on data prepared here")  # fmt: skip
    convert = data_scaler is not None and data_scaler.sha256 != own.sha256
    labels, probabilities = [], []
    with open_feed(path, fmt, training["inputs"], batch_size) as dataset:
        for x, y in dataset:
            if convert:
                x = _rescale(training["inputs"], x, data_scaler, own)
            probabilities.append(np.asarray(model(x, training=False)))
            labels.append(np.asarray(y).argmax(axis=1))
    return np.concatenate(labels), np.concatenate(probabilities)


def _rescale(inputs: str, x, source: Scaler, target: Scaler):
    """Inputs scaled with ``source`` as ``target`` would have scaled them;
    padding rows (all zero) stay zero."""

    def hlf(h):
        return target.scale_hlf(source.unscale_hlf(np.asarray(h, np.float64)))

    def gru(g):
        g = np.asarray(g)
        real = np.any(g != 0.0, axis=-1)
        out = np.zeros_like(g)
        out[real] = target.scale_llf_rows(source.unscale_llf_rows(g[real].astype(np.float64)))
        return out

    if inputs == "inclusive":
        return gru(x[0]), hlf(x[1])
    return hlf(x) if inputs == "hlf" else gru(x)


def evaluate(model_dir: str | Path, output: str | Path, fmt: str | None = None, test_path: str | Path | None = None) -> dict:
    """Score the model's test split and write metrics, plots, the report and
    ``predictions.parquet`` (the scores per event, for the predictions contract)."""
    import pyarrow.parquet as pq

    from tasks.learning.predict import predictions_table
    from tasks.datasets.readers import FeedError, feed_event_ids

    model_dir, output = Path(model_dir), Path(output)
    training = read_json(model_dir / "training.json")
    fmt = fmt or training["settings"]["feed"]
    test_path = Path(test_path) if test_path else Path(training["feed"]["test"])
    labels, probabilities = predict_split(model_dir, test_path, fmt)
    ids = feed_event_ids(test_path, fmt)
    if len(ids) != len(labels):
        raise FeedError(f"{test_path}: read {len(labels)} events but found {len(ids)} event identities")
    metrics = physics_metrics(labels, probabilities)
    metrics.update(model=training["model"], model_dir=str(model_dir), test_data=str(test_path), feed=fmt,
                   epochs=training["epochs_run"], train_events=training["train_events"])  # fmt: skip
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
    log.info("evaluated %s on %d test events: accuracy %.4f, AUC %s -> %s", training["model"], metrics["events"],
             metrics["accuracy"], aucs, output)  # fmt: skip
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
    ax.set(xlabel="false-positive rate (background efficiency)", ylabel="true-positive rate (signal efficiency)",
           title=f"ROC, {metrics['model']} classifier, {metrics['events']} test events")  # fmt: skip
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
            ax.text(j, i, f"{matrix[i, j]:.3f}", ha="center", va="center", color="white" if matrix[i, j] > 0.5 else "black")
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xticklabels=names, yticklabels=names,
           xlabel="predicted", ylabel="true", title="confusion matrix (rows sum to 1)")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_curves(history: dict, path: Path) -> None:
    plt = _pyplot()
    epochs = sorted(history, key=int)
    x = [int(e) + 1 for e in epochs]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, metric in zip(axes, ("loss", "accuracy")):
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
    published = PUBLISHED_AUC.get("inclusive" if model.startswith("inclusive") else model, {})
    rows = []
    for name, c in metrics["classes"].items():
        fpr = c.get("background_fpr_at_99pct_signal")
        rows.append(f"<tr><td>{LABELS[name]}</td><td>{c['auc']:.4f}</td><td>{published.get(name, '—')}</td>"
                    f"<td>{'—' if fpr is None else f'{fpr:.4f}'}</td></tr>")  # fmt: skip
    confusion = "".join(
        f"<tr><th>{LABELS[n]}</th>" + "".join(f"<td>{v:.3f}</td>" for v in row) + "</tr>"
        for n, row in zip(schema.CLASS_NAMES, metrics["confusion_matrix"])
    )
    last = history[max(history, key=int)] if history else {}
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(model)} classifier: evaluation</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}img{{max-width:100%}}.note{{color:#555}}</style></head>
<body>
<h1>{html.escape(model)} classifier: evaluation on the test split</h1>
<p>{metrics['events']} test events, {metrics['train_events']} training events, {metrics['epochs']} epochs,
feed {html.escape(metrics['feed'])}. Accuracy <b>{metrics['accuracy']:.4f}</b>; final training loss
{last.get('loss', float('nan')):.4f}, validation loss {last.get('val_loss', float('nan')):.4f}.</p>
<h2>Per class (one vs rest)</h2>
<table><tr><th>class</th><th>AUC (ours)</th><th>AUC published</th><th>background FPR at 99 % signal efficiency</th></tr>
{''.join(rows)}</table>
<p class="note">Published: Nguyen et al. 2018 (SparkDLTrigger), {html.escape(model)}-type model trained on 3.4 M
fully simulated events. <b>Measured on different data</b>: ours come from this pipeline's input (by default the
generated sample), so the numbers compare the method, not the detector physics.</p>
{_image(folder / 'roc.png')}
<h2>Confusion matrix (row-normalised: true class → predicted)</h2>
<table><tr><th></th>{''.join(f'<th>{LABELS[n]}</th>' for n in schema.CLASS_NAMES)}</tr>{confusion}</table>
{_image(folder / 'confusion.png')}
<h2>Training curves</h2>
{_image(folder / 'curves.png')}
<p class="note">Model: {html.escape(metrics['model_dir'])}; test data: {html.escape(metrics['test_data'])}.</p>
</body></html>
"""
