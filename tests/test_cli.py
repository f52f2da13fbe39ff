"""The ``topo`` command: help for every option, stages end to end, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from tasks.cli import build_parser


def topo(*args, data_root, check=True):
    env = os.environ | {"TOPO_DATA_ROOT": str(data_root), "TOPO_DASK_WORKERS": "2"}
    return subprocess.run(
        [sys.executable, "-m", "tasks.cli", *args], capture_output=True, text=True, env=env, check=check
    )


@pytest.mark.parametrize("command", ["generate", "ingest", "prepare", "feeds"])
def test_every_option_is_explained(command):
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    for action in sub._actions:
        if action.option_strings and action.dest != "help":
            assert action.help and len(action.help) > 10, f"{command} {action.option_strings} has no help"


def test_generate_ingest_prepare_feeds(tmp_path):
    gen = topo("generate", "--events", "90", "--files-per-sample", "1", "--seed", "3", data_root=tmp_path)
    assert json.loads(gen.stdout)["events_per_sample"] == {"qcd": 12, "ttbar": 25, "wjets": 53}
    gen = topo(
        "generate", "--events", "240", "--mix", "1:1:1", "--files-per-sample", "1", "--seed", "3", data_root=tmp_path
    )
    ing = topo("ingest", "--chunk", "30", data_root=tmp_path)
    result = json.loads(ing.stdout)
    assert result["output"] == str(tmp_path / "events" / "manual")
    assert pq.read_table(result["output"]).num_rows == result["events_written"] > 0
    assert "rejected_no_isolated_lepton" in ing.stderr  # the cutflow table
    prep = json.loads(topo("prepare", "--seed", "5", "--shard-events", "20", data_root=tmp_path).stdout)
    assert prep["output"] == str(tmp_path / "prepared" / "manual")
    assert len(set(prep["train"]["per_class"].values())) == 1
    assert pq.read_table(tmp_path / "prepared" / "manual" / "train").num_rows == prep["train"]["events"]
    feeds = json.loads(topo("feeds", "--compression", "none", data_root=tmp_path).stdout)
    assert feeds["output"] == str(tmp_path / "prepared" / "manual-tfrecord") and feeds["compression"] == "none"
    assert feeds["train"]["events"] == prep["train"]["events"] and feeds["test"]["events"] == prep["test"]["events"]
    assert sorted(p.name for p in (tmp_path / "prepared" / "manual-tfrecord" / "test").iterdir()) == [
        "part-00000.tfrecord"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "--events", "1"], "events must be at least"),
        (["generate", "--mix", "1:2"], "three weights"),
        (["ingest", "--input", "/nonexistent/raw"], "does not exist"),
        (["ingest", "--chunk", "0"], "chunk"),
        (["prepare", "--test-fraction", "1.5"], "test_fraction must be between 0 and 1"),
        (["prepare", "--events", "/nonexistent/events"], "does not exist; run ingestion first"),
        (["feeds", "--prepared", "/nonexistent/prepared"], "is not a prepared dataset"),
        (["generate", "--day", "2026-02-30"], "'2026-02-30' is not a day in YYYY-MM-DD form"),
        (["generate", "--day", "2026-02-03", "--output", "x"], "give --day or --output, not both"),
        (["train", "--model", "hlf", "--tuned"], "--tuned: no search has written"),
        (
            ["train", "--model", "cnn"],
            "invalid choice: 'cnn' (choose from 'hlf', 'gru', 'inclusive', 'inclusive_lstm', 'inclusive_transformer')",
        ),
        (["rollback", "--model", "cnn"], "invalid choice: 'cnn'"),
        (["summary"], "no run under"),
        (["summary", "no-such-run"], "no run 'no-such-run'"),
    ],
)
def test_bad_parameters_give_a_clear_error(tmp_path, args, message):
    if args[0] == "ingest" and "--input" not in args:
        topo("generate", "--events", "30", "--files-per-sample", "1", data_root=tmp_path)
    result = topo(*args, data_root=tmp_path, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_generate_lands_a_day_in_the_dated_layout_and_slots_are_reported(tmp_path):
    done = topo("generate", "--day", "2026-03-04", "--events", "30", "--files-per-sample", "1", data_root=tmp_path)
    assert json.loads(done.stdout)["output"] == str(tmp_path / "raw" / "2026-03-04")
    assert sorted(p.parent.name for p in (tmp_path / "raw" / "2026-03-04").rglob("*.root")) == ["qcd", "ttbar", "wjets"]
    slots = json.loads(topo("training-slots", data_root=tmp_path).stdout)
    assert slots["slots"] == (slots["gpus"] or 1)


def test_summary_of_an_unfinished_run_says_so_and_shows_what_is_there(tmp_path):
    events = tmp_path / "runs" / "r1" / "events"
    events.mkdir(parents=True)
    cutflow = {"qcd": {"read": 10, "written": 4}}
    (events / "_summary.json").write_text(json.dumps({"events_written": 4, "cutflow": cutflow, "bad_files": {}}))
    result = topo("summary", "r1", data_root=tmp_path, check=False)
    assert result.returncode == 2
    assert "run r1 did not finish" in result.stderr and f"events dataset: {events}  (4 events)" in result.stderr
