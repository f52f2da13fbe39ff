"""Daily partitions: raw files land by day, each day becomes one validated partition.

Layout under the data root (``Settings.raw_root`` may put raw files elsewhere):

    raw/<YYYY-MM-DD>/<sample>/*.root       what the detector (or the generator) wrote that day
    staging/events/<YYYY-MM-DD>/           that day's ingestion, until its contract passes
    events/<YYYY-MM-DD>/                   the published, validated partition

Ingestion writes the staging directory; only a passed contract moves it to
``events/<day>``, replacing that day's earlier partition and nothing else. So
``events/`` holds validated partitions only, which is what retraining reads.

The empty-day rule: a day with no raw directory, or one without any ROOT file
under its sample directories, is *skipped* (the Airflow task ends as skipped
and says so in its log); nothing is written and an existing partition of that
day is left as it is. Files that exist but are all unreadable are an error.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path

from tasks.core import schema
from tasks.core.errors import SettingsError
from tasks.core.storage import replace_directory

log = logging.getLogger(__name__)

DAY_FORMAT = "%Y-%m-%d"


def parse_day(day: str) -> dt.date:
    try:
        return dt.datetime.strptime(day, DAY_FORMAT).date()
    except ValueError:
        raise SettingsError(f"{day!r} is not a day in YYYY-MM-DD form") from None


def raw_day(raw_root: str | Path, day: str) -> Path:
    return Path(raw_root) / parse_day(day).strftime(DAY_FORMAT)


def staging_partition(data_root: str | Path, day: str) -> Path:
    return Path(data_root) / "staging" / "events" / parse_day(day).strftime(DAY_FORMAT)


def partition(data_root: str | Path, day: str) -> Path:
    return Path(data_root) / "events" / parse_day(day).strftime(DAY_FORMAT)


def has_input(raw_dir: Path) -> bool:
    """Whether a day brought any ROOT file for any sample (the empty-day rule)."""
    return any(any((raw_dir / name).rglob("*.root")) for name in schema.CLASS_NAMES if (raw_dir / name).is_dir())


def publish(staged: str | Path, data_root: str | Path, day: str) -> Path:
    """Move a validated staging partition into ``events/<day>``, replacing that day only."""
    final = partition(data_root, day)
    replace_directory(Path(staged), final)
    log.info("published %s", final)
    return final


def discard(staged: str | Path) -> None:
    shutil.rmtree(staged, ignore_errors=True)


def partitions(data_root: str | Path) -> dict[str, Path]:
    """Published partitions by day, oldest first."""
    root = Path(data_root) / "events"
    found = {}
    for p in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            parse_day(p.name)
        except SettingsError:
            continue  # hidden temporaries and anything else that is not a day
        if (p / "_summary.json").exists():
            found[p.name] = p
    return found


def window(data_root: str | Path, days: int, end: str = "") -> list[Path]:
    """The published partitions of the ``days`` calendar days ending at ``end``
    (default: the newest partition's day), oldest first."""
    if days < 1:
        raise SettingsError(f"a window needs at least one day, got {days}")
    available = partitions(data_root)
    if not available:
        return []
    last = parse_day(end) if end else parse_day(max(available))
    first = last - dt.timedelta(days=days - 1)
    return [p for day, p in available.items() if first <= parse_day(day) <= last]
