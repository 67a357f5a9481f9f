"""The catalogue and the feature tags must not drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sim.errors import ConformanceInputError
from sim.harness.catalogue import CATALOGUE_PATH, ScenarioRef, drift, feature_scenarios, load_catalogue


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
        ("{id: WH-001, text: X should y, source: s, since: '0.1.0'}", "must be MUST-worded"),
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


#: One citation a reader can open: the source document's section, upstream at a named
#: release or commit (repository, path, optionally ": function"), a web page, or "suite".
OPENABLE_SOURCE = re.compile(
    r"^(?:"
    r"doc 4\.\d(?:\.\d)?(?: \(.+\))?"
    r"|[\w.-]+/[\w.-]+@(?:v?\d[\w.-]*|[0-9a-f]{40}) [\w./-]+(?:[:,] .+| \(.+\))?"
    r"|https://\S+"
    r"|suite(?: \(.+\))?"
    r")$"
)


def _raw_entries() -> list[dict[str, object]]:
    document = yaml.safe_load(CATALOGUE_PATH.read_text(encoding="utf-8"))
    entries: list[dict[str, object]] = document["requirements"]
    return entries


def test_every_requirement_states_its_level_and_says_it() -> None:
    for entry in _raw_entries():
        assert entry.get("level") in ("MUST", "SHOULD"), f"{entry['id']}: level {entry.get('level')!r}"
        says = str(entry["level"]) in str(entry["text"])
        assert says, f"{entry['id']}: the text does not say {entry['level']}"
    levels = {requirement.level for requirement in load_catalogue().requirements}
    assert levels == {"MUST", "SHOULD"}


def test_every_source_can_be_opened_by_a_reader() -> None:
    for entry in _raw_entries():
        source = str(entry["source"])
        assert "spec section" not in source, f"{entry['id']}: 'spec section N' is not a source"
        for citation in source.split("; "):
            assert OPENABLE_SOURCE.match(citation), f"{entry['id']}: cannot open the source {citation!r}"


def test_a_should_requirement_cites_the_suite_or_upstream() -> None:
    for requirement in load_catalogue().requirements:
        if requirement.level == "SHOULD":
            assert "SHOULD" in requirement.text and "MUST" not in requirement.text, requirement.id


def test_the_source_pattern_refuses_vague_citations() -> None:
    for vague in ("spec section 6", "CAA src/webhook", "CAA cloud-api-adaptor (limit handling)", "upstream"):
        assert not OPENABLE_SOURCE.match(vague), vague


def test_no_requirement_entered_after_this_release() -> None:
    """``since`` is a release of this suite: never one later than the suite's own version."""
    from packaging.version import Version

    import sim

    current = Version(sim.__version__)
    late = [(r.id, r.since) for r in load_catalogue().requirements if Version(r.since) > current]
    assert late == [], f"requirements entered after release {current}: {late}"
