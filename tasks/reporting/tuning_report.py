"""The report of a hyperparameter search: ``<data root>/tuning/<run>/report.html``.

In the run report's style (tasks.reporting.page): every trial with its
hyperparameters and scores, the best one marked, each trial's score, and
the validation loss per epoch of every trial, from the trials' own records
(``trial-NNN/trial.json`` and ``trial-NNN/model/history.json``).
"""

from __future__ import annotations

from pathlib import Path

from tasks.core.catalog import RunLayout
from tasks.core.storage import read_json
from tasks.reporting import page as p

SECTIONS = ("best", "trials", "scores", "training")


def write_search_report(
    search: RunLayout, metric: str, best: int, written: str | None = None, best_record: dict | None = None
) -> Path:
    """Write the search's report.html from the trials kept under ``search``.
    ``best_record``: the best trial's record when it may be of an earlier
    search (an Optuna study resumed), with its ``search``."""
    from tasks.reporting import plots

    trials = sorted(
        (read_json(f) for f in search.root.glob("trial-*/trial.json")),
        key=lambda t: t["index"],
    )
    histories = {
        f"trial {t['index']}": read_json(Path(t["model_dir"]) / "history.json")
        for t in trials
        if (Path(t["model_dir"]) / "history.json").exists()
    }
    keys = sorted({k for t in trials for k in t["hyperparameters"]})
    score_names = sorted({k for t in trials for k in t.get("scores", {})})
    rows = [
        [
            p.Markup(f"<b>{t['index']} (best)</b>") if t["index"] == best else t["index"],
            *(str(t["hyperparameters"].get(k, "—")) for k in keys),
            *(f"{t['scores'][s]:.4f}" if s in t.get("scores", {}) else "—" for s in score_names),
            f"{t['finished'] - t['started']:.0f}",
        ]
        for t in trials
    ]
    found = next((t for t in trials if t["index"] == best), None)
    chosen = found or best_record
    earlier = (
        f"<p>Trial {best} of an earlier search of the same study, <code>{p.esc(chosen.get('search', '?'))}</code>, "
        "is still the study's best.</p>"
        if found is None and chosen is not None
        else ""
    )
    best_body = (
        earlier
        + p.table(["hyperparameter", "value"], [[k, str(v)] for k, v in chosen["hyperparameters"].items()], 2)
        + f"<p>{p.esc(metric)} <b>{chosen['score']:.4f}</b> on the test split of "
        f"<code>{p.esc(chosen['prepared'])}</code>, {chosen['epochs']} epochs, seed {chosen['seed']}.</p>"
        + (
            f"<p>Written to <code>{p.esc(written)}</code>: training reads it unless told not to.</p>"
            if written
            else "<p>Not written (write_best off).</p>"
        )
        if chosen
        else "<p>No trial finished.</p>"
    )
    model = trials[0]["model"] if trials else "?"
    sections = [
        ("best", "The best trial", best_body),
        ("trials", "Every trial", p.table(["trial", *keys, *score_names, "seconds"], rows, 1 + len(keys))),
        (
            "scores",
            f"{metric} of each trial",
            p.image(
                plots.trial_scores([t["index"] for t in trials], [t["score"] for t in trials], metric, best),
                "score of each trial",
            )
            if trials
            else "",
        ),
        (
            "training",
            "Training curves of every trial",
            p.image(plots.training_curves(histories), "training curves of every trial") if histories else "",
        ),
    ]
    intro = (
        f"<p>Search <b>{p.esc(search.run)}</b>: {len(trials)} trials of the {p.esc(model)} classifier, scored by "
        f"{p.esc(metric)} ({'lower' if metric.startswith('fpr99_') else 'higher'} is better).</p>"
    )
    return p.write_page(search.report, p.document(f"Hyperparameter search {search.run}", intro, sections))
