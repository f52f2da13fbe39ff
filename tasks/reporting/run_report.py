"""The run report: one page for a whole pipeline run, next to its outputs.

``<run dir>/summary.json`` and ``<run dir>/report.html`` gather what a
physicist asks first: per model the AUC of each class, the accuracy, the
background rate at 99 % signal efficiency, whether it became champion and why,
with links to each model's own report (plots, confusion matrix).
"""

from __future__ import annotations

import html
from pathlib import Path

from tasks.core import schema
from tasks.core.catalog import RunLayout
from tasks.core.storage import read_json, temporary_sibling, write_json


def summarise_run(run: RunLayout, decisions: list[dict] | None = None) -> dict:
    """Write summary.json and report.html for the evaluated models of ``run``."""
    by_model = {d["model"]: d for d in decisions or []}
    models = []
    for model in _evaluated_models(run):  # sorted by name
        metrics_file = run.evaluation(model) / "metrics.json"
        m = read_json(metrics_file)
        decision = by_model.get(m["model"], {})
        models.append(
            {
                "model": m["model"],
                "events": m["events"],
                "accuracy": m["accuracy"],
                "auc": {name: c["auc"] for name, c in m["classes"].items()},
                "fpr99": {name: c.get("background_fpr_at_99pct_signal") for name, c in m["classes"].items()},
                "report": str(metrics_file.parent / "report.html"),
                "promoted": decision.get("promoted"),
                "decision": decision.get("reason"),
                "version": decision.get("challenger"),
            }
        )
    summary = {"run": run.run, "models": models, "report": str(run.report)}
    write_json(run.summary, summary)
    _write_html(run.report, summary)
    return summary


def _evaluated_models(run: RunLayout) -> list[str]:
    if run.evaluations is None:
        if not run.models.is_dir():
            return []
        return sorted(p.name for p in run.models.iterdir() if run.evaluation(p.name).joinpath("metrics.json").exists())
    return sorted(p.parent.name for p in run.evaluations.glob("*/metrics.json"))


def describe_run(run: RunLayout) -> str:
    """Where everything of a finished run is, its cutflow and its AUC table (``topo summary``)."""
    lines = []
    if (run.events / "_summary.json").exists():
        ingested = read_json(run.events / "_summary.json")
        lines += [
            f"Outputs of run {run.run}:",
            f"  events dataset: {run.events}  ({ingested['events_written']} events)",
            f"  cutflow:        {run.events / '_cutflow.json'}",
        ]
        lines += [
            f"    {name:6s} read {c['read']:7d}  written {c['written']:7d}" for name, c in ingested["cutflow"].items()
        ]
        if ingested["bad_files"]:
            lines += ["  bad input files:", *(f"    {f}" for f in ingested["bad_files"])]
    else:
        lines.append(f"Outputs of run {run.run}:")
    if (run.prepared / "_summary.json").exists():
        p = read_json(run.prepared / "_summary.json")
        lines.append(
            f"  prepared data:  {run.prepared}  (Petastorm-ready Parquet: train {p['train']['events']}, "
            f"test {p['test']['events']} events, {p['kept_per_class']} per class)"
        )
        lines.append(f"  scaler:         {run.prepared / 'scaler.json'}")
    if (run.tfrecord / "_summary.json").exists():
        lines.append(f"  TFRecord feed:  {run.tfrecord}")
    for model in _evaluated_models(run):
        lines.append(f"  {model:9s} model: {run.model(model)}")
        lines.append(f"            report: {run.evaluation(model) / 'report.html'}")
    if run.summary.exists():
        s = read_json(run.summary)
        lines += [
            "",
            "Test-split AUC of each model (one-vs-rest):",
            auc_table(s),
            "",
            f"HTML report of the run: {s['report']}",
        ]
    return "\n".join(lines)


def auc_table(summary: dict) -> str:
    """The AUC table as plain text, for logs and terminals."""
    classes = schema.CLASS_NAMES
    lines = [f"{'model':10s} " + " ".join(f"{'AUC ' + c:>10s}" for c in classes) + f" {'accuracy':>9s}  champion"]
    for m in summary["models"]:
        champion = {True: "promoted", False: "kept old", None: "-"}[m["promoted"]]
        lines.append(
            f"{m['model']:10s} "
            + " ".join(f"{m['auc'][c]:10.4f}" for c in classes)
            + f" {m['accuracy']:9.4f}  {champion}"
        )
    return "\n".join(lines)


def _write_html(path: Path, summary: dict) -> None:
    classes = schema.CLASS_NAMES
    head = "".join(f"<th>AUC {c}</th>" for c in classes) + "".join(
        f"<th>bkg rate @99% {c}</th>" for c in classes if c != "qcd"
    )
    rows = []
    for m in summary["models"]:
        cells = "".join(f"<td>{m['auc'][c]:.4f}</td>" for c in classes)
        cells += "".join(
            f"<td>{m['fpr99'][c]:.4f}</td>" if m["fpr99"].get(c) is not None else "<td>-</td>"
            for c in classes
            if c != "qcd"
        )
        link = html.escape(str(Path(m["report"]).relative_to(path.parent)))
        champion = {True: "promoted", False: "not promoted", None: "-"}[m["promoted"]]
        rows.append(
            f"<tr><td><a href='{link}'>{html.escape(m['model'])}</a></td>{cells}<td>{m['accuracy']:.4f}</td>"
            f"<td title='{html.escape(m['decision'] or '')}'>{champion}</td></tr>"
        )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>run {html.escape(summary["run"])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style>
</head><body><h1>Topology classifier run {html.escape(summary["run"])}</h1>
<p>Test-split metrics of each model; the model name links to its report (ROC curves, confusion matrix, training history).
"bkg rate @99%": background efficiency at 99 % signal efficiency (lower is better).</p>
<table><tr><th>model</th>{head}<th>accuracy</th><th>champion</th></tr>{"".join(rows)}</table>
</body></html>
"""
    tmp = temporary_sibling(path, "tmp")
    tmp.write_text(page)
    tmp.replace(path)
