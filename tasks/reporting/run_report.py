"""The run report: one page for a whole pipeline or retraining run, next to its outputs.

``<run dir>/summary.json`` and ``<run dir>/report.html`` gather what a
physicist asks first and shares: every model of the run side by side (ROC
curves overlaid per class, background rejection at the 99 % working point,
the AUC table beside the paper's), the run's data (cutflow per sample, class
balance before and after undersampling, each contract's verdict and rules),
the promotion decisions with both scores and the champion history, and the
training curves. The page is one self-contained file (tasks.reporting.page).
"""

from __future__ import annotations

import logging
from pathlib import Path

from tasks.core import schema
from tasks.core.catalog import RunLayout
from tasks.core.storage import read_json, write_json
from tasks.reporting import page as p

log = logging.getLogger(__name__)

SECTIONS = ("models", "roc", "rejection", "data", "contracts", "promotion", "training")
"""The anchors of the report's sections, in page order (the browser test checks each)."""


def summarise_run(
    run: RunLayout,
    decisions: list[dict] | None = None,
    tracking_uri: str | None = None,
    validation_root: Path | None = None,
    title: str = "Topology classifier run",
) -> dict:
    """Write summary.json and report.html for the evaluated models of ``run``.

    ``tracking_uri``: read each model's champion history from the registry;
    ``validation_root``: show the contracts' verdicts on this run's datasets."""
    from tasks.reporting.verdicts import run_verdicts

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
    verdicts = run_verdicts(validation_root, run.root) if validation_root else []
    histories = {}
    if tracking_uri:
        from tasks.learning.registry import champion_history

        for d in decisions or []:
            try:
                histories[d["model"]] = champion_history(d["name"], tracking_uri)
            except Exception as exc:  # the page stands without it
                log.warning("champion history of %s not read: %s", d["name"], exc)
    summary = {
        "run": run.run,
        "models": models,
        "report": str(run.report),
        "contracts": [{k: v[k] for k in ("contract", "dataset", "success")} for v in verdicts],
        "sections": list(SECTIONS),
    }
    write_json(run.summary, summary)
    p.write_page(run.report, _page(run, summary, decisions or [], verdicts, histories, title))
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


# --- the page ---------------------------------------------------------------------------
def _page(run: RunLayout, summary: dict, decisions: list, verdicts: list, histories: dict, title: str) -> str:
    from tasks.reporting import plots

    curves = {
        m["model"]: plots.curves_of(run.evaluation(m["model"]) / "scores.npz")
        for m in summary["models"]
        if (run.evaluation(m["model"]) / "scores.npz").exists()
    }
    fpr99 = {m["model"]: m["fpr99"] for m in summary["models"]}
    model_histories = {
        m["model"]: read_json(run.model(m["model"]) / "history.json")
        for m in summary["models"]
        if (run.model(m["model"]) / "history.json").exists()
    }
    intro = (
        f"<p>Run <b>{p.esc(summary['run'])}</b>: {len(summary['models'])} model(s) evaluated on the test split. "
        f"Outputs under <code>{p.esc(run.root)}</code>. Each model name links to its own report "
        "(confusion matrix, its ROC curves). One self-contained file: it opens offline.</p>"
    )
    if not summary["models"]:
        intro += '<p class="bad">No evaluated model in this run.</p>'
    sections = [
        ("models", "Models side by side, beside the paper", _models_section(run, summary)),
        (
            "roc",
            "ROC curves of every model, per class",
            p.image(plots.roc_overlay(curves), "ROC curves per class") if curves else "<p>No scores.</p>",
        ),
        ("rejection", "Background rejection at the trigger working point", _rejection_section(curves, fpr99)),
        ("data", "The run's data: cutflow and class balance", _data_section(run)),
        ("contracts", "Data contracts", _contracts_section(verdicts)),
        ("promotion", "Promotion decisions and champion history", _promotion_section(decisions, histories)),
        ("training", "Training curves", _training_section(run, model_histories)),
    ]
    return p.document(f"{title} {summary['run']}", intro, sections)


def _models_section(run: RunLayout, summary: dict) -> str:
    from tasks.learning.records import MODELS

    classes = schema.CLASS_NAMES
    rows = []
    for m in summary["models"]:
        record = MODELS.get(m["model"])
        published = (record.published_auc if record is not None else None) or {}
        link = p.Markup(f'<a href="{p.esc(Path(m["report"]).relative_to(run.root))}">{p.esc(m["model"])}</a>')
        cells = []
        for c in classes:
            ours, paper = m["auc"][c], published.get(c)
            cells += [f"{ours:.4f}", "—" if paper is None else f"{paper:.3f}"]
            cells.append("—" if paper is None else f"{ours - paper:+.4f}")
        champion = {True: "promoted", False: "not promoted", None: "—"}[m["promoted"]]
        rows.append([link, *cells, f"{m['accuracy']:.4f}", champion])
    header = ["model"]
    for c in classes:
        label = plots_label(c)
        header += [f"AUC {label}", f"paper {label}", "Δ"]
    header += ["accuracy", "champion"]
    return (
        p.table(header, rows)
        + '<p class="note">Paper: Nguyen et al. 2018, "Topology classification with deep learning to improve '
        'real-time event selection at the LHC" (3.4 M simulated events); the particle-sequence GRU alone has no '
        "published AUC. Test-split AUC, one class against the rest. Measured on this run's input: with the toy "
        "generator they compare the method, not the detector physics.</p>"
    )


def plots_label(name: str) -> str:
    from tasks.reporting.plots import LABELS

    return LABELS.get(name, name)


def _rejection_section(curves: dict, fpr99: dict) -> str:
    from tasks.reporting import plots

    if not curves:
        return "<p>No scores.</p>"
    rows = []
    for model, by_signal in fpr99.items():
        for signal in plots.SIGNALS:
            rate = by_signal.get(signal)
            rows.append(
                [
                    model,
                    plots_label(signal),
                    "—" if rate is None else f"{rate:.4f}",
                    "—" if not rate else f"{1 / rate:.1f}",
                ]
            )
    return (
        p.image(plots.rejection(curves, fpr99), "background rejection against signal efficiency")
        + p.table(["model", "signal", "background rate at 99 % signal efficiency", "rejection (1 / rate)"], rows, 2)
        + '<p class="note">The trigger use: keep 99 % of the interesting events and reject what background one '
        "can. The rate is the fraction of the other classes' test events still accepted at that threshold.</p>"
    )


def _data_section(run: RunLayout) -> str:
    out = []
    cutflow_file = run.events / "_cutflow.json"
    if cutflow_file.exists():
        cutflow = read_json(cutflow_file)
        steps = sorted({k for c in cutflow.values() for k in c if k.startswith("rejected_")})
        rows = []
        for sample, c in cutflow.items():
            efficiency = c["written"] / c["read"] if c.get("read") else 0.0
            rows.append([sample, c["read"], *(c.get(s, 0) for s in steps), c["written"], f"{efficiency:.3f}"])
        header = ["sample", "read", *(s.removeprefix("rejected_").replace("_", " ") for s in steps)]
        out.append("<h3>Cutflow per sample (trigger-like selection)</h3>")
        out.append(p.table([*header, "written", "efficiency"], rows))
    else:
        out.append(f"<p>No ingestion in this run (no {p.esc(cutflow_file)}): it trained on earlier data.</p>")
    prepared_file = run.prepared / "_summary.json"
    if prepared_file.exists():
        prepared = read_json(prepared_file)
        before = prepared.get("input_per_class", {})
        rows = [
            [
                plots_label(c),
                before.get(c, "—"),
                prepared["train"]["per_class"].get(c, 0),
                prepared["test"]["per_class"].get(c, 0),
            ]
            for c in schema.CLASS_NAMES
        ]
        out.append("<h3>Class balance before and after undersampling</h3>")
        out.append(p.table(["class", "selected (before)", "train (after)", "test (after)"], rows))
        out.append(
            f'<p class="note">Undersampled to {prepared["kept_per_class"]} events per class, the size of the '
            "smallest class; split by event identity.</p>"
        )
    return "\n".join(out)


def _contracts_section(verdicts: list) -> str:
    if not verdicts:
        return "<p>No contract validation recorded for this run's datasets.</p>"
    rows = [
        [v["contract"], v["dataset"], p.verdict(v["success"]), v["rows"], v["partitions"], len(v["rules"])]
        for v in verdicts
    ]
    out = [p.table(["contract", "dataset", "verdict", "rows", "partitions", "rules"], rows, 3)]
    for v in verdicts:
        rules = [
            [
                r["suite"],
                r["expectation"],
                r["column"],
                r["why"],
                r["severity"],
                r["checked"],
                p.verdict(r["failed"] == 0, "passed", f"failed {r['failed']}"),
            ]
            for r in v["rules"]
        ]
        docs = (
            f'<p class="note">GX data docs: <a href="{p.esc(v["docs"])}">{p.esc(v["docs"])}</a> (they load '
            "their styles from a CDN: online only; everything they hold is in the table above).</p>"
            if v["docs"]
            else ""
        )
        warnings = "".join(f"<li>{p.esc(w)}</li>" for w in v["warnings"])
        out.append(
            f"<details{' open' if not v['success'] else ''}><summary>{p.esc(v['contract'])} on "
            f"{p.esc(v['dataset'])}: {p.verdict(v['success'])}, {len(rules)} rules</summary>"
            + p.table(["suite", "expectation", "column", "why", "severity", "suite runs", "result"], rules, 5)
            + (f"<ul class='warn'>{warnings}</ul>" if warnings else "")
            + docs
            + "</details>"
        )
    return "\n".join(out)


def _promotion_section(decisions: list, histories: dict) -> str:
    if not decisions:
        return "<p>No promotion step in this run.</p>"
    rows = []
    for d in sorted(decisions, key=lambda d: d["model"]):
        scores = d.get("scores", {})
        rows.append(
            [
                d["model"],
                f"v{d['challenger']}",
                "—" if d.get("champion_before") is None else f"v{d['champion_before']}",
                d.get("metric", ""),
                _score(scores.get("challenger")),
                _score(scores.get("champion")),
                p.verdict(d["promoted"], "promoted", "kept the champion"),
                _approval(d.get("approval")),
                d.get("reason", ""),
            ]
        )
    out = [
        p.table(
            [
                "model",
                "challenger",
                "champion before",
                "metric",
                "challenger score",
                "champion score",
                "decision",
                "approval",
                "reason",
            ],
            rows,
            4,
        )
    ]
    for model, history in sorted(histories.items()):
        hrows = [
            [
                h.get("time", ""),
                f"v{h['champion']}",
                "—" if h.get("previous") is None else f"v{h['previous']}",
                "rollback" if h.get("rollback") else h.get("metric", ""),
                _score(h.get("score")),
            ]
            for h in history
        ]
        out.append(f"<h3>Champion history of {p.esc(model)}</h3>")
        out.append(p.table(["time", "champion", "replaced", "by", "score"], hrows, 4))
    return "\n".join(out)


def _approval(approval: dict | None) -> str:
    """Who decided, when a person was asked (the approval step)."""
    if not approval or not approval.get("asked"):
        return "not asked"
    if approval.get("timed_out"):
        return "timed out: rejected"
    return f"{'approved' if approval['approved'] else 'rejected'} by {approval.get('by') or '?'}"


def _score(value) -> str:
    return "—" if value is None else f"{value:.4f}"


def _training_section(run: RunLayout, histories: dict) -> str:
    from tasks.reporting import plots

    if not histories:
        return "<p>No training history.</p>"
    out = [p.image(plots.training_curves(histories), "training curves of every model")]
    for model in histories:
        own = run.evaluation(model) / "curves.png"
        if own.exists():
            out.append(f"<h3>{p.esc(model)}</h3>" + p.image(own.read_bytes(), f"training curves of {model}"))
    return "\n".join(out)
