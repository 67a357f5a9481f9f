"""summary.json verdicts (MUSTs decide, SHOULDs advise, a selection is PARTIAL) and the HTML report."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest

from sim.errors import ConformanceInputError
from sim.files import sha256_file
from sim.harness.catalogue import Catalogue, Requirement, feature_scenarios, load_catalogue
from sim.harness.report.html import render_report
from sim.harness.report.model import Summary
from sim.harness.report.results import FAILED, NOT_APPLICABLE, NOT_RUN, PASSED, ScenarioResult
from sim.harness.report.selection import check_tags
from sim.harness.report.summary import (
    CONFORMANT,
    HEADLINES,
    NOT_CONFORMANT,
    NOTHING_VERIFIED,
    PARTIAL,
    build_summary,
    catalogue_scenarios,
    requirement_verdict,
)


def catalogue(*ids: str, should: tuple[str, ...] = ()) -> Catalogue:
    requirements = tuple(
        Requirement(
            i,
            f"It {'SHOULD' if i in should else 'MUST'} do {i} <safely>",
            "doc 4.1.2",
            "0.1.0",
            level="SHOULD" if i in should else "MUST",
        )
        for i in ids
    )
    return Catalogue(requirements, {r.id: r for r in requirements})


def result(
    name: str,
    outcome: str,
    *ids: str,
    reason: str | None = None,
    outline: str | None = None,
    capability: str | None = None,
) -> ScenarioResult:
    return ScenarioResult(
        f"steps/test_conformance.py::{name}",
        "Feature",
        name,
        list(ids),
        outcome,
        reason,
        0.01,
        feature_uri="x.feature",
        outline=outline,
        examples={"n": name} if outline else None,
        capability=capability,
    )


def summary_of(
    results: list[ScenarioResult],
    tmp_path: Path,
    *,
    should: tuple[str, ...] = (),
    full: bool = True,
    not_run: dict[str, str] | None = None,
) -> Summary:
    junit = tmp_path / "junit.xml"
    junit.write_text("<testsuites/>", encoding="utf-8")
    now = datetime(2026, 11, 28, tzinfo=UTC)
    summary = build_summary(
        catalogue=catalogue("WH-001", "NL-001", "LP-001", "WH-099", should=should),
        results=results,
        target={"name": "reference"},
        artifacts={"junit.xml": junit},
        started=now,
        finished=now,
        selection=[] if full else ["-m", "WH-001"],
        run_id="run-1",
        not_run=not_run,
        narrowed=not full,
        expected={("x.feature", 0)},
    )
    return cast(Summary, json.loads(json.dumps(summary)))  # summary.json as its readers get it


def test_requirement_verdicts() -> None:
    assert requirement_verdict([]) == NOT_RUN
    assert requirement_verdict([PASSED, NOT_APPLICABLE]) == PASSED
    assert requirement_verdict([PASSED, FAILED]) == FAILED
    assert requirement_verdict([NOT_APPLICABLE, NOT_APPLICABLE]) == NOT_APPLICABLE
    assert requirement_verdict([NOT_RUN]) == NOT_RUN


def test_not_applicable_is_never_counted_as_passed(tmp_path: Path) -> None:
    summary = summary_of(
        [
            result("a", PASSED, "WH-001"),
            result("b", NOT_APPLICABLE, "LP-001", reason="not applicable on target 'reference': needs guest"),
        ],
        tmp_path,
    )
    verdicts = {r["id"]: r["verdict"] for r in summary["requirements"]}
    assert verdicts == {"WH-001": PASSED, "NL-001": NOT_RUN, "LP-001": NOT_APPLICABLE, "WH-099": NOT_RUN}
    assert summary["counts"]["scenarios"] == {PASSED: 1, FAILED: 0, NOT_APPLICABLE: 1, NOT_RUN: 0}


def test_one_failed_must_fails_the_run_and_its_requirement(tmp_path: Path) -> None:
    summary = summary_of([result("a", PASSED, "WH-001"), result("b", FAILED, "WH-001", "NL-001")], tmp_path)
    verdicts = {r["id"]: r["verdict"] for r in summary["requirements"]}
    assert verdicts["WH-001"] == FAILED and verdicts["NL-001"] == FAILED
    assert summary["verdict"] == NOT_CONFORMANT
    assert summary["counts"]["must"][FAILED] == 2
    html = render_report(summary, "0" * 64)
    assert (
        'failed MUST requirements</th><td><a href="#WH-001"><code class="id">WH-001</code></a>, '
        '<a href="#NL-001"><code class="id">NL-001</code></a>'
    ) in html


def test_a_failed_should_is_an_advisory_not_a_verdict(tmp_path: Path) -> None:
    summary = summary_of(
        [result("a", PASSED, "WH-001"), result("b", FAILED, "WH-099", reason="volumes left behind")],
        tmp_path,
        should=("WH-099",),
    )
    assert summary["verdict"] == CONFORMANT
    assert summary["counts"]["should"][FAILED] == 1 and summary["counts"]["must"][FAILED] == 0
    assert summary["advisories"] == [
        {
            "id": "WH-099",
            "text": "It SHOULD do WH-099 <safely>",
            "verdict": FAILED,
            "reasons": ["volumes left behind"],
        }
    ]
    levels = {r["id"]: r["level"] for r in summary["requirements"]}
    assert levels == {"WH-001": "MUST", "NL-001": "MUST", "LP-001": "MUST", "WH-099": "SHOULD"}
    html = render_report(summary, "0" * 64)
    assert "volumes left behind" in html and 'class="level SHOULD"' in html
    assert html.index("advisories") < html.index("Traceability matrix")


def test_only_should_requirements_passing_verifies_nothing(tmp_path: Path) -> None:
    summary = summary_of([result("a", PASSED, "WH-099")], tmp_path, should=("WH-099",))
    assert summary["verdict"] == NOTHING_VERIFIED


def test_a_run_of_only_not_applicable_scenarios_verifies_nothing(tmp_path: Path) -> None:
    summary = summary_of([result("b", NOT_APPLICABLE, "LP-001")], tmp_path)
    assert summary["verdict"] == NOTHING_VERIFIED
    assert summary["headline"] == HEADLINES[NOTHING_VERIFIED]
    assert HEADLINES[NOTHING_VERIFIED] in render_report(summary, "0" * 64)


def test_a_selection_is_partial_and_lists_what_it_left_out(tmp_path: Path) -> None:
    summary = summary_of(
        [result("a", PASSED, "WH-001")],
        tmp_path,
        full=False,
        not_run={"steps/test_conformance.py::c": "Feature: c"},
    )
    assert summary["verdict"] == PARTIAL
    assert summary["scope"]["full"] is False
    assert summary["scope"]["scenarios_not_run"] == ["Feature: c"]
    assert set(summary["scope"]["requirements_not_run"]) == {"NL-001", "LP-001", "WH-099"}
    html = render_report(summary, "0" * 64)
    assert "PARTIAL" in html and "CONFORMANT:" not in html.replace("NOT CONFORMANT", "")
    assert "<h2>Not run</h2>" in html and "Feature: c" in html


def test_a_selection_with_a_failure_is_not_conformant(tmp_path: Path) -> None:
    summary = summary_of([result("a", FAILED, "WH-001")], tmp_path, full=False)
    assert summary["verdict"] == NOT_CONFORMANT


def test_the_whole_catalogue_is_needed_for_conformant(tmp_path: Path) -> None:
    """build_summary itself says PARTIAL when not every scenario of the features ran."""
    now = datetime(2026, 11, 28, tzinfo=UTC)
    summary = build_summary(
        catalogue=catalogue("WH-001"),
        results=[result("a", PASSED, "WH-001")],
        target={"name": "reference"},
        artifacts={},
        started=now,
        finished=now,
        selection=[],
    )
    assert summary["verdict"] == PARTIAL and summary["scope"]["full"] is False
    assert len(catalogue_scenarios()) == len(feature_scenarios())


def test_artifacts_are_hashed_and_the_run_id_is_carried(tmp_path: Path) -> None:
    summary = summary_of([result("a", PASSED, "WH-001")], tmp_path)
    assert summary["artifacts"]["junit.xml"]["sha256"] == sha256_file(tmp_path / "junit.xml")
    assert summary["run_id"] == "run-1"
    assert 'content="run-1"' in render_report(summary, "f" * 64)


def test_html_report_first_screen_matrix_and_escaping(tmp_path: Path) -> None:
    summary = summary_of(
        [result("a", PASSED, "WH-001"), result("b", FAILED, "NL-001", reason="expected <10> units")], tmp_path
    )
    html = render_report(summary, "f" * 64)
    body = html.split("<body>")[1]
    assert body.index("NOT CONFORMANT") < body.index("MUST requirements") < body.index("<h2>Features</h2>")
    assert "<safely>" not in html and "&lt;safely&gt;" in html
    assert "expected &lt;10&gt; units" in html
    assert len(re.findall(r'<tr id="[A-Z]{2}-\d{3}"><td class="id">', html)) == 4  # one matrix row each
    assert "f" * 64 in html
    assert "<script" not in html and "http" not in body and "@media print" in html


def test_outline_examples_fold_under_their_scenario(tmp_path: Path) -> None:
    examples = [result(f"e{i}", PASSED, "WH-001", outline="Sizes are rounded") for i in range(12)]
    html = render_report(summary_of(examples, tmp_path), "0" * 64)
    assert "Sizes are rounded: 12 of 12 examples passed</summary>" in html
    assert html.count("<details>") >= 1 and "<details open>" not in html
    failing = [*examples[:11], result("e11", FAILED, "WH-001", outline="Sizes are rounded", reason="x")]
    html = render_report(summary_of(failing, tmp_path), "0" * 64)
    assert "11 of 12 examples passed, 1 failed</summary>" in html and "<details open>" in html


def test_not_applicable_reasons_are_grouped_by_what_the_target_lacks(tmp_path: Path) -> None:
    summary = summary_of(
        [
            result("a", NOT_APPLICABLE, "LP-001", reason="needs guest", capability="guest"),
            result("b", NOT_APPLICABLE, "NL-001", reason="needs guest", capability="guest"),
            result("c", NOT_APPLICABLE, "WH-001", reason="not applicable: the webhook target has no nodes"),
        ],
        tmp_path,
    )
    groups = {g["lacks"]: g for g in summary["not_applicable"]}
    assert set(groups) == {"guest", "the webhook target has no nodes"}
    assert len(groups["guest"]["scenarios"]) == 2 and groups["guest"]["requirements"] == ["LP-001", "NL-001"]


@pytest.mark.parametrize(
    ("expression", "culprit"),
    [
        ("XX-999", "XX-999"),
        ("WH-001 or XX-998", "XX-998"),
        ("WH-001 and (NL-002", "ends too early"),
        ("WH-001 NL-002", "unexpected 'NL-002'"),
        ("or WH-001", "expected a tag, found 'or'"),
        ("WH-001 & NL-002", "'&'"),
        ("needs-gust", "needs-gust"),
        ("", "empty"),
        ("WH-001 and LP-001", "selects no scenario"),
    ],
)
def test_bad_tag_expressions_are_named(expression: str, culprit: str) -> None:
    with pytest.raises(ConformanceInputError, match=None) as caught:
        check_tags(expression, load_catalogue(), feature_scenarios())
    assert culprit in str(caught.value)


def test_good_tag_expressions_pass() -> None:
    for expression in ("WH-006 or NL-002", "not needs-guest and (WH-001 or WH-002)", "needs-guest"):
        check_tags(expression, load_catalogue(), feature_scenarios())


def test_the_console_line_gives_musts_and_advisories_in_the_suites_words(tmp_path: Path) -> None:
    from sim.harness.cli.run import console_summary

    summary = summary_of(
        [result("a", PASSED, "WH-001"), result("b", FAILED, "WH-099"), result("c", NOT_APPLICABLE, "LP-001")],
        tmp_path,
        should=("WH-099",),
        full=False,
    )
    text = console_summary(summary, "reference", tmp_path)
    lines = text.splitlines()
    assert lines[0] == f"peerpods-conformance: {HEADLINES[PARTIAL]}"
    assert "MUST requirements: 1 passed, 0 failed, 1 not applicable, 1 not run" in text
    assert "advisories (SHOULD requirements): 0 passed, 1 failed, 0 not applicable, 0 not run" in text
    assert "not run: 0 scenario(s), 1 requirement(s): NL-001" in text
    assert "skipped" not in text and "run-1" in text


def test_facts_known_only_at_the_end_join_the_identity_without_replacing_any() -> None:
    from sim.harness.cli.run import with_late_facts

    start = {"libvirt URI": "qemu:///system", "pod VMs": "real s390x guests"}
    late = {"pod VMs": "changed", "boot concurrency": "2 at once: measured: it pays"}
    assert with_late_facts(start, late) == {**start, "boot concurrency": "2 at once: measured: it pays"}
    not_reported = {"facts": "not reported: no worker bound to this LPAR ran a scenario there and finished"}
    assert with_late_facts(start, not_reported) == start
