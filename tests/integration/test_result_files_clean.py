"""Clean result files: no terminal escape sequences anywhere, and cucumber.json's scenario times are
JUnit's (the environment's set-up and tear-down included)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from junitparser import JUnitXml

from sim.harness.report.output import RESULT_FILES
from sim.harness.report.plain import plain

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def coloured_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    report_dir = tmp_path_factory.mktemp("ansi")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "sim",
            "run",
            "--report-dir",
            str(report_dir),
            "--tags",
            "WH-001 or WH-004",
            "-p",
            "tests.ansi_failure",
            "--color=yes",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr[-2000:]
    return report_dir


@pytest.mark.parametrize("name", RESULT_FILES)
def test_no_escape_sequences_in_any_result_file(coloured_run: Path, name: str) -> None:
    text = (coloured_run / name).read_text(encoding="utf-8")
    assert "\x1b" not in text and "#x1B" not in text and "\\u001b" not in text
    if name in ("summary.json", "cucumber.json", "junit.xml"):
        assert "expected 1, got 2" in text  # the message itself is kept, only the colour goes


def test_plain_removes_raw_and_junit_escaped_sequences() -> None:
    assert plain("\x1b[91mred\x1b[0m and #x1B[1;31mbold#x1B[0m") == "red and bold"


def _cucumber_totals(report_dir: Path) -> dict[str, float]:
    totals: dict[str, float] = {}
    for feature in json.loads((report_dir / "cucumber.json").read_text()):
        for element in feature["elements"]:
            parts = element.get("before", []) + element["steps"] + element.get("after", [])
            totals[element["name"]] = sum(p["result"].get("duration", 0) for p in parts) / 1e9
    return totals


def test_cucumber_scenario_durations_match_junit(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "sim", "run", "--report-dir", str(tmp_path), "--tags", "WH-004 or NL-002"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 3, completed.stdout[-3000:]
    cucumber = _cucumber_totals(tmp_path)
    junit = {
        case.name: case.time for suite in JUnitXml.fromfile(str(tmp_path / "junit.xml")) for case in suite
    }
    ran = {name: time for name, time in junit.items() if name in cucumber}
    assert ran and len(ran) == len(cucumber)
    for name, seconds in ran.items():
        assert cucumber[name] == pytest.approx(seconds, abs=0.002), name
    assert sum(cucumber.values()) == pytest.approx(sum(ran.values()), abs=0.002 * len(ran))
