"""The requirement catalogue and its traceability to the feature files.

Kubernetes conformance lists every conformance test, with a stable name and the release
it entered, in one machine-readable file; this suite does the same for requirements
(``features/requirements.yaml``), and each scenario names the requirements it checks by
tag (``@WH-001``). The report's traceability matrix and the drift check are built here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_bdd.feature import get_features

from sim.bounds import read_text_bounded
from sim.errors import ConformanceInputError
from sim.paths import FEATURES_DIR
from sim.paths import (
    PROJECT_ROOT as PROJECT_ROOT,  # re-exported for sim.harness.report and sim.harness.cli.run
)
from sim.yamlload import load_one

CATALOGUE_PATH = FEATURES_DIR / "requirements.yaml"

#: The shape of a requirement id; any tag of this shape must be in the catalogue.
REQUIREMENT_ID = re.compile(r"^[A-Z]{2}-\d{3}$")
_FIELDS = ("id", "text", "source", "since")
#: Requirement levels. MUST: what the document or upstream does; only MUSTs decide the
#: verdict. SHOULD: what the suite recommends beyond upstream; reported as advisories.
LEVELS = ("MUST", "SHOULD")


@dataclass(frozen=True)
class Requirement:
    """One requirement: a stable id, MUST-worded text, where it comes from, when it entered."""

    id: str
    text: str
    source: str
    since: str
    level: str = "MUST"


@dataclass(frozen=True)
class Catalogue:
    """Every requirement the suite certifies, in catalogue order."""

    requirements: tuple[Requirement, ...]
    by_id: dict[str, Requirement] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ScenarioRef:
    """A scenario as the traceability matrix names it."""

    feature: str
    scenario: str
    tags: frozenset[str]


def load_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    """Read and validate the catalogue; every error names the file and the entry."""
    document = load_one(read_text_bounded(path, what="requirement catalogue"), source=str(path))
    entries = (document or {}).get("requirements") or []
    if not isinstance(entries, list):
        raise ConformanceInputError(f"{path}: 'requirements' must be a list")
    requirements: list[Requirement] = []
    by_id: dict[str, Requirement] = {}
    for index, entry in enumerate(entries):
        where = f"{path}: requirements[{index}]"
        if not isinstance(entry, dict):
            raise ConformanceInputError(f"{where}: must be a mapping with {', '.join(_FIELDS)}")
        missing = [name for name in _FIELDS if not str(entry.get(name) or "").strip()]
        if missing:
            raise ConformanceInputError(f"{where}: missing {', '.join(missing)}")
        level = str(entry.get("level") or "MUST").strip()
        if level not in LEVELS:
            raise ConformanceInputError(f"{where}: level {level!r} is not one of {', '.join(LEVELS)}")
        requirement = Requirement(**{name: str(entry[name]).strip() for name in _FIELDS}, level=level)
        if not REQUIREMENT_ID.match(requirement.id):
            raise ConformanceInputError(f"{where}: id {requirement.id!r} is not of the form AB-123")
        if requirement.id in by_id:
            raise ConformanceInputError(f"{where}: duplicate id {requirement.id}")
        if level not in requirement.text:
            raise ConformanceInputError(
                f"{where} ({requirement.id}): a {level} requirement's text must be {level}-worded"
            )
        by_id[requirement.id] = requirement
        requirements.append(requirement)
    return Catalogue(tuple(requirements), by_id)


def feature_scenarios(features_dir: Path = FEATURES_DIR) -> list[ScenarioRef]:
    """Every scenario (outlines once) with its own, its rule's and its feature's tags."""
    paths = sorted(str(p) for p in features_dir.glob("**/*.feature"))
    refs: list[ScenarioRef] = []
    for feature in get_features(paths):
        for template in feature.scenarios.values():
            rule_tags = template.rule.tags if template.rule is not None else set()
            tags = frozenset(template.tags | feature.tags | rule_tags)
            refs.append(ScenarioRef(feature.rel_filename, template.name, tags))
    return refs


def requirement_tags(tags: Iterable[str]) -> list[str]:
    """The tags that are shaped like requirement ids."""
    return sorted(tag for tag in tags if REQUIREMENT_ID.match(tag))


def drift(catalogue: Catalogue, scenarios: list[ScenarioRef]) -> list[str]:
    """Problems between tags and catalogue: unknown tags, untagged scenarios, unused requirements."""
    problems: list[str] = []
    used: set[str] = set()
    for ref in scenarios:
        ids = requirement_tags(ref.tags)
        if not ids:
            problems.append(f"{ref.feature}: scenario {ref.scenario!r} carries no requirement id")
        for tag in ids:
            used.add(tag)
            if tag not in catalogue.by_id:
                problems.append(f"{ref.feature}: scenario {ref.scenario!r} names unknown requirement @{tag}")
    for requirement in catalogue.requirements:
        if requirement.id not in used:
            problems.append(f"requirement {requirement.id} is checked by no scenario")
    return problems
