"""Training speed and model quality, measured side by side in one run.

    .venv/bin/python benchmarks/train_benchmark.py [--events 30000] [--epochs 6]

Uses the sample, preparation and TFRecord feed of the feed benchmark
(benchmarks/work/feeds-<events>/, made by benchmarks/feed_benchmark.py, which
this script runs first if they are missing). On this machine (CPU):

- the HLF classifier from each feed (petastorm, TFRecord): rows/s per epoch;
- the inclusive classifier from each feed: events/s per epoch;
- the GRU (particle-sequence) classifier from TFRecord;
  all with SparkDLTrigger's settings (batch 128, 5e-4 → 2e-4 → 1e-4 over 6 epochs);
- quality: the test AUCs of the three models (HLF, GRU, inclusive) trained to
  convergence on this sample. SparkDLTrigger's 6 epochs were 6 × 26,800 steps on
  3.4 M events; on a few thousand events they are ~160 steps, far from
  converged, so the comparison uses ``--quality-epochs`` (40; 60 for the
  cheap HLF model) at batch 64 and 2e-3 → 5e-4.

Writes benchmarks/results/training.json and prints Markdown for docs/benchmarks.md.
Set --gpu-label to tag a run made on a GPU machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.ingest_benchmark import machine  # noqa: E402


def scores(metrics: dict, trained: dict) -> dict:
    """What the tables show of one trained and evaluated model."""
    return {
        "test_auc": {n: round(c["auc"], 4) for n, c in metrics["classes"].items()},
        "test_accuracy": round(metrics["accuracy"], 4),
        "fpr99": {
            n: round(c["background_fpr_at_99pct_signal"], 4)
            for n, c in metrics["classes"].items()
            if "background_fpr_at_99pct_signal" in c
        },
        "final_val_loss": round(trained["final"]["val_loss"], 4),
    }


def joined(values: dict, digits: int) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in values.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", type=int, default=30000, help="generated events of the feed benchmark's sample (default 30000)"
    )
    parser.add_argument("--epochs", type=int, default=6, help="epochs per model (default 6, as SparkDLTrigger)")
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "work", help="where the sample is kept")
    parser.add_argument(
        "--quality-epochs", type=int, default=40, help="epochs of the convergence runs (default 40; HLF gets 1.5×)"
    )
    parser.add_argument(
        "--output", type=Path, default=REPO / "benchmarks" / "results" / "training.json", help="results JSON"
    )
    args = parser.parse_args()

    work = args.workdir / f"feeds-{args.events}"
    if not (work / "tfrecord-none" / "_summary.json").exists():
        subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "feed_benchmark.py"), "--events", str(args.events)], check=True
        )

    import tensorflow as tf

    from tasks.learning.evaluate import evaluate
    from tasks.learning.train import TrainSettings, train

    runs = [
        ("hlf", "petastorm"),
        ("hlf", "tfrecord"),
        ("inclusive", "petastorm"),
        ("inclusive", "tfrecord"),
        ("gru", "tfrecord"),
    ]
    results = {}
    for model, feed in runs:
        out = args.workdir / "train-bench" / f"{model}-{feed}"
        trained = train(
            work / "prepared",
            out,
            TrainSettings(model=model, feed=feed, epochs=args.epochs),
            tfrecord=work / "tfrecord-none",
        )
        metrics = evaluate(out, args.workdir / "train-bench" / f"{model}-{feed}-evaluation")
        rates = trained["events_per_s_per_epoch"]
        results[f"{model}, {feed}"] = {
            "events_per_s_per_epoch": rates,
            "events_per_s_after_first_epoch": round(sum(rates[1:]) / max(1, len(rates) - 1), 1),
            **scores(metrics, trained),
        }
        print(model, feed, json.dumps(results[f"{model}, {feed}"]), flush=True)
    quality = {}
    for model in ("hlf", "gru", "inclusive"):
        epochs = args.quality_epochs * 3 // 2 if model == "hlf" else args.quality_epochs
        settings = TrainSettings(
            model=model,
            feed="tfrecord",
            epochs=epochs,
            batch_size=64,
            learning_rates=((0, 2e-3), (int(epochs * 0.6), 5e-4)),
        )
        out = args.workdir / "train-bench" / f"quality-{model}"
        trained = train(work / "prepared", out, settings, tfrecord=work / "tfrecord-none")
        metrics = evaluate(out, args.workdir / "train-bench" / f"quality-{model}-evaluation")
        quality[model] = {"epochs": epochs, **scores(metrics, trained)}
        print("quality", model, json.dumps(quality[model]), flush=True)
    inclusive_beats_hlf = {
        n: quality["inclusive"]["test_auc"][n] > quality["hlf"]["test_auc"][n] for n in quality["hlf"]["test_auc"]
    }
    summary = {
        "machine": machine()
        + f", TensorFlow {tf.__version__}, "
        + (", ".join(d.name for d in tf.config.list_physical_devices("GPU")) or "CPU only"),
        "command": "python benchmarks/train_benchmark.py " + " ".join(sys.argv[1:]),
        "train_events": trained["train_events"],
        "test_events": trained["test_events"],
        "epochs": args.epochs,
        "runs": results,
        "quality": quality,
        "inclusive_beats_hlf_auc": inclusive_beats_hlf,
        "sparkdltrigger_reference": {
            "hlf_rows_per_s_per_core_bigdl": 890,
            "hlf_rows_per_s_t4": 55000,
            "inclusive_events_per_s_t4": "2700-2950",
        },
    }
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(
        "\n| model, feed | events/s per epoch (after the first) | test AUC QCD / tt̄ / W+jets | accuracy | bkg FPR at 99 % tt̄ / W |"
    )
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['events_per_s_after_first_epoch']:,.0f} | {joined(r['test_auc'], 3)} | {r['test_accuracy']:.3f} | {joined(r['fpr99'], 3)} |"
        )
    print(
        "\n| model (converged) | epochs | test AUC QCD / tt̄ / W+jets | accuracy | val loss | bkg FPR at 99 % tt̄ / W |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in quality.items():
        print(
            f"| {name} | {r['epochs']} | {joined(r['test_auc'], 4)} | {r['test_accuracy']:.4f} | {r['final_val_loss']:.4f} | {joined(r['fpr99'], 3)} |"
        )
    print(f"\ninclusive beats HLF on AUC: {inclusive_beats_hlf}")


if __name__ == "__main__":
    main()
