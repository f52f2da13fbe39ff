"""A `topo train` command line, for tests that train in a process of its own."""

from __future__ import annotations

import sys


def train_command(prepared_dir, output, *extra, model="gru", feed="petastorm", epochs=6, batch_size=4, rate="3e-3"):
    return [
        sys.executable,
        "-m",
        "tasks.cli",
        "train",
        "--prepared",
        str(prepared_dir),
        "--feed",
        feed,
        "--model",
        model,
        "--epochs",
        str(epochs),
        "--batch-size",
        str(batch_size),
        "--learning-rate",
        rate,
        "--output",
        str(output),
        *extra,
    ]
