"""Data configs: the input definition of a source as versioned YAML
(``data_configs/<source>.yaml``), in the spirit of weaver's data configs.

A config names the tree and, for each role of the neutral event
(tasks.events.collections.ROLES, plus ``met``), the collections that may hold
it (the first one present in a file wins) and the branch of each neutral
field. Ingestion records the config and what each file matched in its
``_summary.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tasks.core.errors import SettingsError
from tasks.core.settings import REPO_ROOT
from tasks.events.collections import ROLES

CONFIG_DIR = REPO_ROOT / "data_configs"
VERSION = 1
MET_FIELDS = ("met", "phi")
ALL_ROLES: dict[str, tuple[str, ...]] = {**ROLES, "met": MET_FIELDS}


@dataclass(frozen=True)
class RoleSpec:
    collections: tuple[str, ...]  # candidates, first match wins
    fields: tuple[tuple[str, str], ...]  # (neutral field, branch field), in the neutral order


@dataclass(frozen=True)
class DataConfig:
    source: str
    tree: str
    roles: dict[str, RoleSpec]
    path: str  # where it was read from
    version: int = VERSION

    def describe(self) -> dict:
        """What a dataset's summary records of the config."""
        return {
            "path": self.path,
            "version": self.version,
            "source": self.source,
            "tree": self.tree,
            "roles": {r: {"collections": list(s.collections), "fields": dict(s.fields)} for r, s in self.roles.items()},
        }


def default_config_path(source: str = "delphes") -> Path:
    return CONFIG_DIR / f"{source}.yaml"


@lru_cache(maxsize=16)
def load_data_config(path: str | None = None) -> DataConfig:
    """The data config at ``path`` (default: the Delphes one); a SettingsError naming the key when it is wrong.
    Cached per path: every Dask task of an ingestion asks for it."""
    import yaml

    where = Path(path) if path else default_config_path()
    try:
        raw = yaml.safe_load(where.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"cannot read data config {where}: {exc}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"{where}: a data config is a mapping with version, source, tree and roles")
    if raw.get("version") != VERSION:
        raise SettingsError(f"{where}: version must be {VERSION}, got {raw.get('version')!r}")
    for key in ("source", "tree", "roles"):
        if key not in raw:
            raise SettingsError(f"{where}: '{key}' is missing")
    roles_raw = raw["roles"]
    if not isinstance(roles_raw, dict):
        raise SettingsError(f"{where}: 'roles' must map each role to its collections and fields")
    unknown = sorted(set(roles_raw) - set(ALL_ROLES))
    missing = [r for r in ALL_ROLES if r not in roles_raw]
    if unknown or missing:
        raise SettingsError(
            f"{where}: roles must be {', '.join(ALL_ROLES)}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            + (f"; missing: {', '.join(missing)}" if missing else "")
        )
    roles = {}
    for role, neutral in ALL_ROLES.items():
        spec = roles_raw[role] or {}
        collections = spec.get("collections")
        if isinstance(collections, str):
            collections = [collections]
        if not collections or not all(isinstance(c, str) and c for c in collections):
            raise SettingsError(f"{where}: roles.{role}.collections must be a non-empty list of names")
        fields = spec.get("fields") or {}
        lacking = [f for f in neutral if f not in fields]
        extra = sorted(set(fields) - set(neutral))
        if lacking or extra:
            raise SettingsError(
                f"{where}: roles.{role}.fields must give the branch of each of {', '.join(neutral)}"
                + (f"; missing: {', '.join(lacking)}" if lacking else "")
                + (f"; unknown: {', '.join(extra)}" if extra else "")
            )
        roles[role] = RoleSpec(tuple(collections), tuple((f, str(fields[f])) for f in neutral))
    return DataConfig(source=str(raw["source"]), tree=str(raw["tree"]), roles=roles, path=str(where))
