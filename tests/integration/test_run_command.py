"""`peerpods-conformance run` as a user and a CI job call it: a real process, real report files,
read back by real consumers (junitparser for JUnit, a JSON Schema validator for Cucumber JSON)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from junitparser import JUnitXml, Properties, Skipped, TestCase

from sim.harness.catalogue import feature_scenarios
from sim.harness.report.output import ReportDir
from sim.paths import FEATURES_DIR

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests" / "fixtures" / "cucumber-json.schema.json").read_text())
SUMMARY_SCHEMA = json.loads((ROOT / "schemas" / "summary.schema.json").read_text())
FOUR = ("summary.json", "report.html", "junit.xml", "cucumber.json")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    report_dir = tmp_path_factory.mktemp("full") / "reports"
    return run("run", "--report-dir", str(report_dir), "-q"), report_dir


def summary(report_dir: Path) -> dict[str, Any]:
    return json.loads((report_dir / "summary.json").read_text())  # type: ignore[no-any-return]


def scenario_count() -> int:
    """Scenarios a full run has: each outline counts once per example."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "steps"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return sum(1 for line in done.stdout.splitlines() if "::" in line)


def test_a_full_run_is_conformant_and_its_files_are_bound_by_one_run_id(
    full_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    completed, report_dir = full_run
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    result = summary(report_dir)
    assert result["verdict"] == "CONFORMANT" and result["scope"]["full"] is True
    run_id = result["run_id"]
    for name in FOUR:
        assert run_id in (report_dir / name).read_text(), name
    sums = (report_dir / "SHA256SUMS").read_text().split("\n")
    assert sorted(line.split("  ")[1] for line in sums if line) == sorted(FOUR)
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=report_dir, capture_output=True, check=False
    )
    assert check.returncode == 0, check.stdout
    # the console speaks the suite's words only
    assert "skipped" not in completed.stdout
    assert "not applicable" in completed.stdout and "CONFORMANT" in completed.stdout


def test_cucumber_json_has_every_scenario_and_feature_and_passes_the_schema(
    full_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, report_dir = full_run
    document = json.loads((report_dir / "cucumber.json").read_text())
    jsonschema.validate(document, SCHEMA)
    assert {f["uri"].split("/")[-1] for f in document} == {p.name for p in FEATURES_DIR.glob("*.feature")}
    elements = [e for f in document for e in f["elements"]]
    assert len(elements) == scenario_count() == len(summary(report_dir)["scenarios"])
    not_applicable = [s for s in summary(report_dir)["scenarios"] if s["outcome"] == "not applicable"]
    assert not_applicable, "the reference target has scenarios it cannot answer"
    skipped = [e for e in elements if any(s["result"]["status"] == "skipped" for s in e["steps"])]
    assert len(skipped) == len(not_applicable)
    for element in skipped:
        messages = [s["result"].get("error_message", "") for s in element["steps"]]
        assert any(m.startswith("not applicable") for m in messages), element["name"]


def test_summary_json_passes_its_schema(full_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, report_dir = full_run
    jsonschema.Draft202012Validator(SUMMARY_SCHEMA).validate(summary(report_dir))


def test_the_schema_refuses_what_consumers_refuse() -> None:
    """The schema is no rubber stamp: an untagged @, a failure without message, an unknown field fail."""
    step = {"keyword": "Given", "name": "x", "line": 3, "result": {"status": "failed"}}
    feature = {"uri": "a.feature", "keyword": "Feature", "name": "A", "elements": []}
    element = {"type": "scenario", "keyword": "Scenario", "name": "s", "line": 2, "description": ""}
    element["steps"] = [step]
    for bad in (
        [{**feature, "tags": [{"name": "WH-001"}]}],
        [{**feature, "elements": [element]}],
        [{**feature, "verdict": "passed"}],
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMA)


def case_properties(case: TestCase) -> list[tuple[str, str]]:
    """A testcase's <properties> (junitparser reads them as Properties children)."""
    groups = case.iterchildren(Properties)  # type: ignore[no-untyped-call]  # junitparser: unannotated
    return [(p.name, p.value) for group in groups for p in group]


def test_junit_groups_testcases_by_feature_with_requirement_properties(
    full_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, report_dir = full_run
    xml = JUnitXml.fromfile(str(report_dir / "junit.xml"))
    suites = list(xml)
    cases = [case for suite in suites for case in suite]
    assert len(cases) == scenario_count()
    classnames = {case.classname for case in cases}
    assert classnames == {f"features.{p.stem}" for p in FEATURES_DIR.glob("*.feature")}
    catalogue_ids = {tag for ref in feature_scenarios() for tag in ref.tags if tag[:2].isupper()}
    for case in cases:
        props = case_properties(case)
        requirements = [v for k, v in props if k == "requirement"]
        assert requirements and set(requirements) <= catalogue_ids, case.name
        assert any(k == "feature" for k, _ in props)
    skipped = [c for c in cases if any(isinstance(r, Skipped) for r in c.result)]
    assert len(skipped) == summary(report_dir)["counts"]["scenarios"]["not applicable"]
    properties = suites[0].properties()  # type: ignore[no-untyped-call]  # junitparser: unannotated
    suite_props = {p.name: p.value for p in properties}
    assert suite_props["run_id"] == summary(report_dir)["run_id"]


def test_a_selection_is_partial_and_names_what_did_not_run(tmp_path: Path) -> None:
    completed = run("run", "--report-dir", str(tmp_path), "--tags", "WH-006 or NL-002", "-q")
    assert completed.returncode == 3, completed.stdout + completed.stderr
    result = summary(tmp_path)
    assert result["verdict"] == "PARTIAL" and result["scope"]["full"] is False
    verdicts = {r["id"]: r["verdict"] for r in result["requirements"]}
    assert verdicts["WH-006"] == verdicts["NL-002"] == "passed"
    assert verdicts["WH-001"] == "not run"
    assert "WH-001" in result["scope"]["requirements_not_run"]
    assert result["scope"]["scenarios_not_run"]
    assert "PARTIAL" in completed.stdout and "WH-001" in completed.stdout
    html = (tmp_path / "report.html").read_text()
    assert "PARTIAL" in html and "the whole catalogue ran" not in html


def test_a_k_selection_is_partial_too(tmp_path: Path) -> None:
    completed = run("run", "--report-dir", str(tmp_path), "-k", "initdata", "-q")
    assert completed.returncode == 3, completed.stdout + completed.stderr
    assert summary(tmp_path)["verdict"] == "PARTIAL"


def test_nothing_applicable_is_nothing_verified(tmp_path: Path) -> None:
    completed = run("run", "--report-dir", str(tmp_path), "--tags", "needs-guest", "-q")
    assert completed.returncode == 5, completed.stdout + completed.stderr
    assert summary(tmp_path)["verdict"] == "NOTHING VERIFIED"
    assert "NOTHING VERIFIED: no applicable MUST scenario ran" in completed.stdout
    assert "NOTHING VERIFIED: no applicable MUST scenario ran" in (tmp_path / "report.html").read_text()


def test_a_bad_tag_exits_2_before_anything_runs_and_leaves_the_old_reports(tmp_path: Path) -> None:
    first = run("run", "--report-dir", str(tmp_path), "--tags", "NL-002", "-q")
    assert first.returncode == 3, first.stdout + first.stderr
    before = {name: (tmp_path / name).read_bytes() for name in FOUR}
    completed = run("run", "--report-dir", str(tmp_path), "--tags", "XX-999 or NL-002")
    assert completed.returncode == 2
    assert "XX-999" in completed.stderr and "Traceback" not in completed.stderr
    assert "passed" not in completed.stdout
    assert {name: (tmp_path / name).read_bytes() for name in FOUR} == before


def test_no_file_of_an_earlier_run_survives(tmp_path: Path) -> None:
    for name in FOUR:
        (tmp_path / name).write_text("stale")
    (tmp_path / "other-job.xml").write_text("not ours")
    completed = run("run", "--report-dir", str(tmp_path), "--tags", "NL-002", "-q")
    assert completed.returncode == 3, completed.stdout + completed.stderr
    run_id = summary(tmp_path)["run_id"]
    assert all(run_id in (tmp_path / name).read_text() for name in FOUR)
    assert (tmp_path / "other-job.xml").read_text() == "not ours"
    assert not list(tmp_path.glob(".run-*")), "the staging directory is gone"


def test_a_second_run_into_a_locked_directory_is_refused_naming_the_holder(tmp_path: Path) -> None:
    holder = ReportDir(tmp_path, "holder-run").open()
    try:
        completed = run("run", "--report-dir", str(tmp_path), "--tags", "NL-002")
    finally:
        holder.close()
    assert completed.returncode == 2
    assert "holder-run" in completed.stderr and "pid" in completed.stderr
    assert "passed" not in completed.stdout
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.parametrize("where", ["", "FILE", "FILE/under", "/proc", "/proc/sys/nope"])
def test_an_unwritable_report_dir_exits_2_before_any_scenario(tmp_path: Path, where: str) -> None:
    file = tmp_path / "a-file"
    file.write_text("x")
    report_dir = where.replace("FILE", str(file))
    completed = run("run", "--report-dir", report_dir, "--tags", "NL-002")
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "--report-dir" in completed.stderr and "Traceback" not in completed.stderr
    assert "passed" not in completed.stdout


def test_run_help_lists_the_exit_codes() -> None:
    completed = run("run", "--help")
    assert completed.returncode == 0
    codes = ("0    CONFORMANT", "1    NOT CONFORMANT", "2    bad input", "3    PARTIAL", "4    the run broke")
    for line in (*codes, "5    NOTHING VERIFIED"):
        assert line in completed.stdout


def test_unknown_target_is_a_usage_error() -> None:
    completed = run("run", "--target", "mainframe")
    assert completed.returncode == 2
    assert "mainframe" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_missing_webhook_ca_file_is_named(tmp_path: Path) -> None:
    completed = run(
        "run",
        "--target",
        "webhook",
        "--webhook-url",
        "https://127.0.0.1:9/x",
        "--webhook-ca",
        "nope.pem",
        "--report-dir",
        str(tmp_path / "r"),
    )
    assert completed.returncode == 2
    assert "nope.pem" in completed.stderr and "Traceback" not in completed.stderr
    assert not (tmp_path / "r").exists(), "a refused run leaves no report directory behind"


def test_a_selection_matching_nothing_is_not_a_pass(tmp_path: Path) -> None:
    completed = run("run", "--report-dir", str(tmp_path), "-k", "no_such_scenario_anywhere", "-q")
    assert completed.returncode == 5, completed.stdout + completed.stderr


def test_an_interrupted_run_leaves_the_previous_reports_whole(tmp_path: Path) -> None:
    first = run("run", "--report-dir", str(tmp_path), "--tags", "NL-002", "-q")
    assert first.returncode == 3, first.stdout + first.stderr
    before = {name: (tmp_path / name).read_bytes() for name in FOUR}
    process = subprocess.Popen(
        [sys.executable, "-m", "sim", "run", "--report-dir", str(tmp_path), "-p", "tests.slow_scenarios"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".run-*")):
        assert time.monotonic() < deadline and process.poll() is None, "the run never started"
        time.sleep(0.05)
    time.sleep(2)  # inside the scenarios now: each waits 0.5 s
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out[-2000:] + err[-2000:]
    assert "keeps the previous run's reports" in err
    assert {name: (tmp_path / name).read_bytes() for name in FOUR} == before
    assert not list(tmp_path.glob(".run-*"))


def test_a_report_dir_without_write_permission_exits_2(tmp_path: Path) -> None:
    """An immutable directory refuses writes even to root (CI runs as root, so mode bits would not)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    chattr = subprocess.run(["chattr", "+i", str(locked)], capture_output=True, text=True, check=False)
    if chattr.returncode != 0:
        pytest.skip(f"chattr +i is not possible here: {chattr.stderr.strip()}")
    try:
        for report_dir in (locked, locked / "sub"):
            completed = run("run", "--report-dir", str(report_dir), "--tags", "NL-002")
            assert completed.returncode == 2, completed.stdout + completed.stderr
            assert f"{locked} is not writable" in completed.stderr
            assert "passed" not in completed.stdout
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=False)
