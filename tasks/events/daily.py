"""Daily partitions: raw files land by day, each day becomes one validated partition.

Layout under the data root (``Settings.raw_root`` may put raw files elsewhere):

    raw/<YYYY-MM-DD>/<sample>/...          what the detector (or the generator) wrote that day
    staging/events/<YYYY-MM-DD>/           that day's ingestion, until its contract passes
    events/<YYYY-MM-DD>/                   the published, validated partition

Ingestion writes the staging directory; only a passed contract moves it to
``events/<day>``, replacing that day's earlier partition and nothing else. So
``events/`` holds validated partitions only, which is what retraining reads.

The empty-day rule: a day with no raw directory, or one without any input
file under its sample directories, at any depth, is *skipped* (the Airflow task ends as skipped
and says so in its log); nothing is written and an existing partition of that
day is left as it is. Files that exist but are all unreadable are an error.
Which files are input is the event source's (tasks.events.sources): ROOT
files for Delphes, the default.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path

from tasks.core import schema
from tasks.core.catalog import Catalog, parse_day
from tasks.core.errors import SettingsError
from tasks.core.storage import replace_directory
from tasks.events import sources

log = logging.getLogger(__name__)


def has_input(raw_dir: Path, source: str = sources.DEFAULT_SOURCE) -> bool:
    """Whether a day brought any file of ``source`` for any sample (the empty-day rule)."""
    return any(sources.has_input(Path(raw_dir) / name, source) for name in schema.CLASS_NAMES)


def publish(staged: str | Path, data_root: str | Path, day: str) -> Path:
    """Move a validated staging partition into ``events/<day>``, replacing that day only."""
    final = Catalog.under(data_root).partition(day)
    replace_directory(Path(staged), final)
    log.info("published %s", final)
    return final


def discard(staged: str | Path) -> None:
    shutil.rmtree(staged, ignore_errors=True)


def partitions(data_root: str | Path) -> dict[str, Path]:
    """Published partitions by day, oldest first."""
    root = Catalog.under(data_root).partitions
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
