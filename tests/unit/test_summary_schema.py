"""schemas/summary.schema.json: summary.json's readers' contract, kept in step with the typed
summary (sim.harness.report.model) and met by what build_summary writes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, NotRequired, get_origin, get_type_hints

import jsonschema
import pytest

from sim.harness.report import model
from sim.harness.report.results import FAILED, NOT_APPLICABLE, NOT_RUN, PASSED

from .test_report import result, summary_of

ROOT = Path(__file__).resolve().parents[2]
SCHEMA: dict[str, Any] = json.loads((ROOT / "schemas" / "summary.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(
    SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize(
    ("typed", "where"),
    [
        (model.Summary, SCHEMA),
        (model.Scope, SCHEMA["properties"]["scope"]),
        (model.CountsByKind, SCHEMA["properties"]["counts"]),
        (model.SuiteInfo, SCHEMA["properties"]["suite"]),
        (model.RequirementRecord, SCHEMA["$defs"]["requirement"]),
        (model.ScenarioRecord, SCHEMA["$defs"]["scenario"]),
        (model.StepRecord, SCHEMA["$defs"]["step"]),
        (model.RanOn, SCHEMA["$defs"]["scenario"]["properties"]["ran_on"]),
        (model.Advisory, SCHEMA["$defs"]["advisory"]),
        (model.NotApplicableGroup, SCHEMA["$defs"]["not_applicable"]),
        (model.Artifact, SCHEMA["$defs"]["artifact"]),
    ],
)
def test_the_schema_and_the_typed_summary_name_the_same_fields(typed: type, where: dict[str, Any]) -> None:
    fields = set(get_type_hints(typed))
    assert set(where["properties"]) == fields
    hints = get_type_hints(typed, include_extras=True)
    required = {name for name, hint in hints.items() if get_origin(hint) is not NotRequired}
    assert set(where["required"]) == required  # a NotRequired field may be absent


def _summaries(tmp_path: Path) -> list[dict[str, Any]]:
    runs = [
        [result("a", PASSED, "WH-001"), result("b", PASSED, "NL-001")],
        [
            result("a <b>", FAILED, "WH-001", reason="x & <y>"),
            result("d", FAILED, "WH-099", reason="advice"),
            result("e", NOT_APPLICABLE, "LP-001", reason="not applicable: no", capability="lpar-host"),
        ],
        [result("o1", PASSED, "WH-001", outline="O <n>"), result("o2", NOT_RUN, "WH-001", outline="O <n>")],
    ]
    found: list[dict[str, Any]] = [dict(summary_of(r, tmp_path, should=("WH-099",))) for r in runs]
    found.append(dict(summary_of(runs[0], tmp_path, full=False, not_run={"x": "F: left out"})))
    return found


def test_what_build_summary_writes_meets_the_schema(tmp_path: Path) -> None:
    for summary in _summaries(tmp_path):
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(summary)]
        assert not errors, errors


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("verdict",), "MOSTLY CONFORMANT"),
        (("counts", "must", "passed"), -1),
        (("scope", "full"), "yes"),
        (("artifacts", "junit.xml", "sha256"), "not-a-digest"),
        (("requirements", 0, "level"), "MAY"),
        (("started",), "yesterday"),
    ],
)
def test_the_schema_refuses_a_summary_its_readers_would_misread(
    tmp_path: Path, path: tuple[str | int, ...], value: object
) -> None:
    summary = copy.deepcopy(_summaries(tmp_path)[0])
    holder: Any = summary
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    assert list(VALIDATOR.iter_errors(summary)), f"{path} = {value!r} passed the schema"


def test_an_unknown_field_is_refused(tmp_path: Path) -> None:
    summary = _summaries(tmp_path)[0]
    summary["verdict_v3"] = "CONFORMANT"
    assert list(VALIDATOR.iter_errors(summary))
