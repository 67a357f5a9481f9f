"""The catalogue and the feature tags must not drift apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.catalogue import ScenarioRef, drift, feature_scenarios, load_catalogue
from sim.errors import ConformanceInputError


def test_every_scenario_and_requirement_is_traced() -> None:
    problems = drift(load_catalogue(), feature_scenarios())
    assert problems == []


def test_catalogue_is_not_empty_and_every_area_has_scenarios() -> None:
    catalogue = load_catalogue()
    prefixes = {requirement.id.split("-")[0] for requirement in catalogue.requirements}
    assert {"WH", "NS", "ID", "NL"} <= prefixes


def test_drift_names_unknown_tags_untagged_scenarios_and_unused_requirements(tmp_path: Path) -> None:
    catalogue_file = tmp_path / "requirements.yaml"
    catalogue_file.write_text(
        "requirements:\n"
        "  - {id: WH-001, text: The webhook MUST do it, source: doc 4.1.2, since: '0.1.0'}\n"
        "  - {id: WH-002, text: The webhook MUST do that, source: doc 4.1.2, since: '0.1.0'}\n",
        encoding="utf-8",
    )
    catalogue = load_catalogue(catalogue_file)
    scenarios = [
        ScenarioRef("a.feature", "tagged", frozenset({"WH-001", "needs-cluster"})),
        ScenarioRef("a.feature", "typo", frozenset({"WH-009"})),
        ScenarioRef("a.feature", "bare", frozenset()),
    ]
    problems = drift(catalogue, scenarios)
    assert any("unknown requirement @WH-009" in p for p in problems)
    assert any("'bare' carries no requirement id" in p for p in problems)
    assert any("WH-002 is checked by no scenario" in p for p in problems)
    assert not any("WH-001" in p for p in problems)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{id: WH-1, text: X MUST y, source: s, since: '0.1.0'}", "not of the form"),
        ("{id: WH-001, text: X should y, source: s, since: '0.1.0'}", "MUST-worded"),
        ("{id: WH-001, text: X MUST y, since: '0.1.0'}", "missing source"),
    ],
)
def test_bad_catalogue_entries_are_named(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "requirements.yaml"
    path.write_text(f"requirements:\n  - {entry}\n", encoding="utf-8")
    with pytest.raises(ConformanceInputError, match=message) as info:
        load_catalogue(path)
    assert "requirements[0]" in str(info.value)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "requirements.yaml"
    entry = "{id: NL-001, text: It MUST, source: s, since: '0.1.0'}"
    path.write_text(f"requirements:\n  - {entry}\n  - {entry}\n", encoding="utf-8")
    with pytest.raises(ConformanceInputError, match="duplicate id NL-001"):
        load_catalogue(path)
