"""Daily partitions: the dated raw layout, the empty-day rule, publishing one day, the retraining window."""

from __future__ import annotations

import pytest

from tasks.core.catalog import Catalog, parse_day
from tasks.core.errors import SettingsError
from tasks.events.daily import has_input, partitions, publish, window


def partition(root, day):
    return Catalog.under(root).partition(day)


def staging_partition(root, day):
    return Catalog.under(root).staging_partition(day)


def raw_day(raw_root, day):
    return Catalog.under(raw_root.parent, raw_root).raw_day(day)


def _partition(root, day, content="x"):
    p = partition(root, day)
    p.mkdir(parents=True)
    (p / "_summary.json").write_text("{}")
    (p / "part.parquet").write_text(content)
    return p


def test_days_are_checked_and_laid_out_by_date(tmp_path):
    assert raw_day(tmp_path, "2026-01-02") == tmp_path / "2026-01-02"
    assert staging_partition(tmp_path, "2026-01-02") == tmp_path / "staging" / "events" / "2026-01-02"
    with pytest.raises(SettingsError, match="'2026-13-01' is not a day"):
        parse_day("2026-13-01")


def test_empty_day_rule(tmp_path):
    day = tmp_path / "2026-01-01"
    assert not has_input(day)  # no directory
    (day / "qcd").mkdir(parents=True)
    (day / "qcd" / "notes.txt").write_text("no ROOT file here")
    (day / "other").mkdir()
    (day / "other" / "x.root").write_text("")
    assert not has_input(day)  # a ROOT file outside the sample directories does not count
    (day / "wjets" / "run1").mkdir(parents=True)
    (day / "wjets" / "run1" / "a.root").write_text("")
    assert has_input(day) and has_input(day, source="delphes")
    with pytest.raises(SettingsError, match="unknown event source 'cms'"):
        has_input(day, source="cms")


def test_publish_replaces_that_day_only(tmp_path):
    other = _partition(tmp_path, "2026-01-01", "day one")
    _partition(tmp_path, "2026-01-02", "old")
    staged = staging_partition(tmp_path, "2026-01-02")
    staged.mkdir(parents=True)
    (staged / "_summary.json").write_text("{}")
    (staged / "new.parquet").write_text("new")
    publish(staged, tmp_path, "2026-01-02")
    assert sorted(p.name for p in partition(tmp_path, "2026-01-02").iterdir()) == ["_summary.json", "new.parquet"]
    assert not staged.exists()
    assert (other / "part.parquet").read_text() == "day one"
    assert sorted(p.name for p in (tmp_path / "events").iterdir()) == [
        "2026-01-01",
        "2026-01-02",
    ]  # no temporaries left


def test_window_takes_the_last_calendar_days_of_published_partitions(tmp_path):
    assert window(tmp_path, 7) == []
    for day in ("2026-01-01", "2026-01-03", "2026-01-04", "2026-01-09"):
        _partition(tmp_path, day)
    (tmp_path / "events" / ".2026-01-05.tmp-abc").mkdir()  # a publish in progress is not a partition
    (tmp_path / "events" / "2026-01-06").mkdir()  # nor is a directory without its summary
    assert list(partitions(tmp_path)) == ["2026-01-01", "2026-01-03", "2026-01-04", "2026-01-09"]
    assert [p.name for p in window(tmp_path, 7)] == ["2026-01-03", "2026-01-04", "2026-01-09"]
    assert [p.name for p in window(tmp_path, 2, end="2026-01-04")] == ["2026-01-03", "2026-01-04"]
    with pytest.raises(SettingsError, match="at least one day"):
        window(tmp_path, 0)
