"""summary.json verdicts and the HTML report's content."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sim.catalogue import Catalogue, Requirement
from sim.files import sha256_file
from sim.report.html import render_report
from sim.report.results import FAILED, NOT_APPLICABLE, PASSED, SKIPPED, ScenarioResult
from sim.report.summary import NOT_RUN, build_summary, requirement_verdict


def catalogue(*ids: str) -> Catalogue:
    requirements = tuple(Requirement(i, f"It MUST do {i} <safely>", "doc 4.1.2", "0.1.0") for i in ids)
    return Catalogue(requirements, {r.id: r for r in requirements})


def result(name: str, outcome: str, *ids: str, reason: str | None = None) -> ScenarioResult:
    return ScenarioResult(
        f"steps/test_conformance.py::{name}", "Feature", name, list(ids), outcome, reason, 0.01
    )


def test_requirement_verdicts() -> None:
    assert requirement_verdict([]) == NOT_RUN
    assert requirement_verdict([PASSED, NOT_APPLICABLE]) == PASSED
    assert requirement_verdict([PASSED, FAILED]) == FAILED
    assert requirement_verdict([NOT_APPLICABLE, NOT_APPLICABLE]) == NOT_APPLICABLE
    assert requirement_verdict([SKIPPED]) == SKIPPED


def summary_of(results: list[ScenarioResult], tmp_path: Path) -> dict[str, object]:
    junit = tmp_path / "junit.xml"
    junit.write_text("<testsuites/>", encoding="utf-8")
    now = datetime(2026, 11, 28, tzinfo=UTC)
    return build_summary(
        catalogue=catalogue("WH-001", "NL-001", "LP-001"),
        results=results,
        target={"name": "reference"},
        artifacts={"junit.xml": junit},
        started=now,
        finished=now,
        selection=[],
    )


def test_not_applicable_is_never_counted_as_passed(tmp_path: Path) -> None:
    summary = summary_of(
        [
            result("a", PASSED, "WH-001"),
            result("b", NOT_APPLICABLE, "LP-001", reason="not applicable on target 'reference': needs guest"),
        ],
        tmp_path,
    )
    verdicts = {r["id"]: r["verdict"] for r in summary["requirements"]}  # type: ignore[attr-defined]
    assert verdicts == {"WH-001": PASSED, "NL-001": NOT_RUN, "LP-001": NOT_APPLICABLE}
    assert summary["verdict"] == PASSED
    assert summary["counts"]["scenarios"] == {PASSED: 1, FAILED: 0, NOT_APPLICABLE: 1, SKIPPED: 0}  # type: ignore[index]


def test_one_failure_fails_the_run_and_its_requirement(tmp_path: Path) -> None:
    summary = summary_of([result("a", PASSED, "WH-001"), result("b", FAILED, "WH-001", "NL-001")], tmp_path)
    verdicts = {r["id"]: r["verdict"] for r in summary["requirements"]}  # type: ignore[attr-defined]
    assert verdicts["WH-001"] == FAILED and verdicts["NL-001"] == FAILED
    assert summary["verdict"] == FAILED


def test_a_run_of_only_not_applicable_scenarios_is_not_a_pass(tmp_path: Path) -> None:
    summary = summary_of([result("b", NOT_APPLICABLE, "LP-001")], tmp_path)
    assert summary["verdict"] == FAILED


def test_artifacts_are_hashed(tmp_path: Path) -> None:
    summary = summary_of([result("a", PASSED, "WH-001")], tmp_path)
    assert summary["artifacts"]["junit.xml"]["sha256"] == sha256_file(tmp_path / "junit.xml")  # type: ignore[index]


def test_html_report_shows_matrix_and_escapes_text(tmp_path: Path) -> None:
    summary = summary_of(
        [result("a", PASSED, "WH-001"), result("b", FAILED, "NL-001", reason="expected <10> units")], tmp_path
    )
    html = render_report(json.loads(json.dumps(summary)), "f" * 64)
    assert "NOT CONFORMANT" in html
    assert "<safely>" not in html and "&lt;safely&gt;" in html
    assert "expected &lt;10&gt; units" in html
    assert html.count("<tr><td><code>") == 3
    assert "f" * 64 in html
    assert "<script" not in html and "http" not in html.split("<body>")[1]
