"""Data configs: the input definition of a source as versioned YAML
(``data_configs/<source>.yaml``), in the spirit of weaver's data configs.

A config names the tree and, for each role of the neutral event
(tasks.events.collections.ROLES, plus ``met``), the collections that may hold
it (the first one present in a file wins) and the branch of each neutral
field. Ingestion records the config and what each file matched in its
``_summary.json``.

Optional, per role (the CMS configs use them; docs/spec.md has the mapping):

- ``select: {field, abs_in}``: keep the objects whose |field| is listed
  (particle-flow candidates of one collection split by pdgId);
- ``require: {field, min}``: keep the objects whose field is at least ``min``
  (an ID flag, e.g. ``tightId``);
- ``working_point`` (jets): a jet is b-tagged when its ``btag`` field is above
  it (default 0: Delphes' BTag bit);
- ``vertex`` (tracks): ``{d0, dz, primary_vertex, scale, missing}``: x, y, z
  from the impact parameters and the primary vertex collection, times
  ``scale`` (cm → mm), instead of three vertex fields; a track whose d0 and dz
  both equal ``missing`` has no track details and sits at the primary vertex;
- ``isolation`` (leptons, sources without particles): ``{charged, all}``, the
  relative isolations the file already holds.

And at the top: ``particle_content: false`` for a source without particles
(then only electrons, muons, jets and met), ``own_track_max_dr`` for the
own-track match of the selected lepton (default ``schema.OWN_TRACK_MAX_DR``),
``match_own_track: true`` to subtract from a lepton's charged isolation the
tracks found that close to it, instead of its own pT (Delphes: its track is
always there, at its pT).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tasks.core import schema
from tasks.core.errors import SettingsError
from tasks.core.settings import REPO_ROOT
from tasks.events.collections import ROLES

CONFIG_DIR = REPO_ROOT / "data_configs"
VERSION = 1
MET_FIELDS = ("met", "phi")
ALL_ROLES: dict[str, tuple[str, ...]] = {**ROLES, "met": MET_FIELDS}
PARTICLE_ROLES = ("tracks", "photons", "neutral_hadrons")
VERTEX_FIELDS = ("x", "y", "z")
ROLE_OPTIONS = {"collections", "fields", "select", "require", "working_point", "vertex", "isolation"}


@dataclass(frozen=True)
class RoleSpec:
    collections: tuple[str, ...]  # candidates, first match wins
    fields: tuple[tuple[str, str], ...]  # (neutral field, branch field), in the neutral order
    select: tuple[str, tuple[int, ...]] | None = None  # (branch field, |values| kept)
    require: tuple[str, float] | None = None  # (branch field, minimum kept)
    working_point: float | None = None  # jets: b-tagged when btag > this
    vertex: tuple[str, str, str, float, float | None] | None = None
    # tracks: (d0 field, dz field, vertex collection, scale, the d0 = dz value that means "no track details")
    isolation: tuple[str, str] | None = None  # leptons: (charged, all) relative isolation fields

    def branch_fields(self) -> tuple[tuple[str, str], ...]:
        """Every (key, branch field) read from the role's collection: the
        neutral fields, then those of the options (keys starting with '@')."""
        extra = []
        if self.select:
            extra.append(("@select", self.select[0]))
        if self.require:
            extra.append(("@require", self.require[0]))
        if self.vertex:
            extra += [("@d0", self.vertex[0]), ("@dz", self.vertex[1])]
        if self.isolation:
            extra += [("@iso_charged", self.isolation[0]), ("@iso_all", self.isolation[1])]
        return self.fields + tuple(extra)

    def describe(self) -> dict:
        out: dict = {"collections": list(self.collections), "fields": dict(self.fields)}
        if self.select:
            out["select"] = {"field": self.select[0], "abs_in": list(self.select[1])}
        if self.require:
            out["require"] = {"field": self.require[0], "min": self.require[1]}
        if self.working_point is not None:
            out["working_point"] = self.working_point
        if self.vertex:
            d0, dz, pv, scale, missing = self.vertex
            out["vertex"] = {"d0": d0, "dz": dz, "primary_vertex": pv, "scale": scale, "missing": missing}
        if self.isolation:
            out["isolation"] = {"charged": self.isolation[0], "all": self.isolation[1]}
        return out


@dataclass(frozen=True)
class DataConfig:
    source: str
    tree: str
    roles: dict[str, RoleSpec]
    path: str  # where it was read from
    version: int = VERSION
    particle_content: bool = True
    own_track_max_dr: float = schema.OWN_TRACK_MAX_DR
    match_own_track: bool = False

    def describe(self) -> dict:
        """What a dataset's summary records of the config."""
        return {
            "path": self.path,
            "version": self.version,
            "source": self.source,
            "tree": self.tree,
            "particle_content": self.particle_content,
            "own_track_max_dr": self.own_track_max_dr,
            "match_own_track": self.match_own_track,
            "roles": {r: s.describe() for r, s in self.roles.items()},
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
    particles = raw.get("particle_content", True)
    if not isinstance(particles, bool):
        raise SettingsError(f"{where}: particle_content must be true or false, got {particles!r}")
    own_dr = _number(where, "own_track_max_dr", raw.get("own_track_max_dr", schema.OWN_TRACK_MAX_DR), positive=True)
    match_own = raw.get("match_own_track", False)
    if not isinstance(match_own, bool):
        raise SettingsError(f"{where}: match_own_track must be true or false, got {match_own!r}")
    expected = [r for r in ALL_ROLES if particles or r not in PARTICLE_ROLES]
    unknown = sorted(set(roles_raw) - set(expected))
    missing = [r for r in expected if r not in roles_raw]
    if unknown or missing:
        raise SettingsError(
            f"{where}: roles must be {', '.join(expected)}"
            + ("" if particles else " (particle_content is false)")
            + _listing(("unknown", unknown), ("missing", missing))
        )
    roles = {role: _role(where, role, roles_raw[role] or {}, particles) for role in expected}
    return DataConfig(
        source=str(raw["source"]),
        tree=str(raw["tree"]),
        roles=roles,
        path=str(where),
        particle_content=particles,
        own_track_max_dr=own_dr,
        match_own_track=match_own,
    )


def _listing(*named: tuple[str, list[str]]) -> str:
    """The '; <name>: a, b' tail of a message for each non-empty list, in the order given."""
    return "".join(f"; {name}: {', '.join(items)}" for name, items in named if items)


def _number(where: Path, key: str, value, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (positive and value <= 0):
        raise SettingsError(f"{where}: {key} must be a {'positive ' if positive else ''}number, got {value!r}")
    return float(value)


def _mapping(where: Path, key: str, value, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(value, dict) or any(k not in value for k in keys) or set(value) - set(keys) - set(optional):
        raise SettingsError(f"{where}: {key} must be a mapping of {', '.join(keys + optional)}, got {value!r}")
    return value


def _role(where: Path, role: str, spec: dict, particles: bool) -> RoleSpec:
    if not isinstance(spec, dict) or set(spec) - ROLE_OPTIONS:
        raise SettingsError(f"{where}: roles.{role} takes {', '.join(sorted(ROLE_OPTIONS))}, got {spec!r}")
    collections = spec.get("collections")
    if isinstance(collections, str):
        collections = [collections]
    if not collections or not all(isinstance(c, str) and c for c in collections):
        raise SettingsError(f"{where}: roles.{role}.collections must be a non-empty list of names")
    options: dict = {}
    if "select" in spec:
        sel = _mapping(where, f"roles.{role}.select", spec["select"], ("field", "abs_in"))
        values = sel["abs_in"] if isinstance(sel["abs_in"], list) else [sel["abs_in"]]
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise SettingsError(f"{where}: roles.{role}.select.abs_in must be a list of integers (pdgIds)")
        options["select"] = (str(sel["field"]), tuple(abs(v) for v in values))
    if "require" in spec:
        req = _mapping(where, f"roles.{role}.require", spec["require"], ("field",), ("min",))
        options["require"] = (str(req["field"]), _number(where, f"roles.{role}.require.min", req.get("min", 1)))
    if "working_point" in spec:
        if role != "jets":
            raise SettingsError(f"{where}: roles.{role}.working_point: only jets have a b-tag working point")
        options["working_point"] = _number(where, f"roles.{role}.working_point", spec["working_point"])
    derived: tuple[str, ...] = ()
    if "vertex" in spec:
        if role != "tracks":
            raise SettingsError(f"{where}: roles.{role}.vertex: only tracks have a vertex")
        v = _mapping(
            where, f"roles.{role}.vertex", spec["vertex"], ("d0", "dz", "primary_vertex"), ("scale", "missing")
        )
        scale = _number(where, f"roles.{role}.vertex.scale", v.get("scale", 1.0), positive=True)
        missing = None if v.get("missing") is None else _number(where, f"roles.{role}.vertex.missing", v["missing"])
        options["vertex"] = (str(v["d0"]), str(v["dz"]), str(v["primary_vertex"]), scale, missing)
        derived = VERTEX_FIELDS
    if "isolation" in spec:
        if role not in ("electrons", "muons") or particles:
            raise SettingsError(
                f"{where}: roles.{role}.isolation: only leptons of a source without particles"
                " (particle_content: false) take their isolation from the file"
            )
        iso = _mapping(where, f"roles.{role}.isolation", spec["isolation"], ("charged", "all"))
        options["isolation"] = (str(iso["charged"]), str(iso["all"]))
    elif role in ("electrons", "muons") and not particles:
        raise SettingsError(
            f"{where}: roles.{role}.isolation is required when particle_content is false"
            " (there are no particles to compute it from)"
        )
    neutral = [f for f in ALL_ROLES[role] if f not in derived]
    fields = spec.get("fields") or {}
    lacking = [f for f in neutral if f not in fields]
    extra = sorted(set(fields) - set(neutral))
    if lacking or extra:
        raise SettingsError(
            f"{where}: roles.{role}.fields must give the branch of each of {', '.join(neutral)}"
            + (" (x, y, z come from vertex)" if derived else "")
            + _listing(("missing", lacking), ("unknown", extra))
        )
    return RoleSpec(tuple(collections), tuple((f, str(fields[f])) for f in neutral), **options)
