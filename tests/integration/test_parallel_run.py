"""``run --workers N``: the same result files as a serial run, one run id, the worker named.

The reference target (no daemons): a serial run and a run on two pytest-xdist workers, compared
file by file apart from timings, hosts, workers, run ids and the digests that follow from them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from sim.harness.distributed import CRASH_SEAM_ENV
from sim.harness.report.bundle import BUNDLE

ROOT = Path(__file__).resolve().parents[2]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
VOLATILE_HTML = [
    (UUID, "RUN"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"), "TIME"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "SHA256"),
    (re.compile(r"\d+(\.\d+)? (s|ms)\b"), "DURATION"),
    (re.compile(r" at 0x[0-9a-f]+"), " at ADDR"),
]


def run(report_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", "run", "--target", "reference", "--report-dir", str(report_dir), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("runs")
    serial, parallel = run(base / "serial"), run(base / "parallel", "--workers", "2")
    assert serial.returncode == 0, serial.stdout + serial.stderr
    assert parallel.returncode == 0, parallel.stdout + parallel.stderr
    return base / "serial", base / "parallel"


def summary_without_volatile(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    for key in ("run_id", "started", "finished", "duration_seconds", "artifacts"):
        data.pop(key)
    for scenario in data["scenarios"]:
        scenario.pop("duration"), scenario.pop("ran_on")
        for step in scenario["steps"]:
            step.pop("duration")
    return data


def cucumber_without_volatile(path: Path) -> str:
    text = UUID.sub("RUN", path.read_text())
    return re.sub(r'"duration": \d+', '"duration": 0', text)


def junit_cases(path: Path) -> list[Any]:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    found: list[Any] = []
    for suite in suites:
        found.append(
            sorted((k, v) for k, v in suite.attrib.items() if k not in ("time", "timestamp", "hostname"))
        )
        for case in suite.iter("testcase"):
            children = [
                (c.tag, c.get("message", "").split(" at 0x")[0], [p.attrib for p in c.iter("property")])
                for c in case
                if c.tag not in ("system-out", "system-err")
            ]
            found.append((case.get("classname"), case.get("name"), children))
    return found


def test_a_parallel_runs_files_are_a_serial_runs(runs: tuple[Path, Path]) -> None:
    serial, parallel = runs
    assert summary_without_volatile(serial / "summary.json") == summary_without_volatile(
        parallel / "summary.json"
    )
    assert cucumber_without_volatile(serial / "cucumber.json") == cucumber_without_volatile(
        parallel / "cucumber.json"
    )
    assert junit_cases(serial / "junit.xml") == junit_cases(parallel / "junit.xml")
    html = [(d / "report.html").read_text() for d in runs]
    for pattern, word in VOLATILE_HTML:
        html = [pattern.sub(word, text) for text in html]
    assert html[0] == html[1]
    assert sorted(p.name for p in serial.iterdir()) == sorted(p.name for p in parallel.iterdir())
    sums = [[line.split()[1] for line in (d / "SHA256SUMS").read_text().splitlines()] for d in runs]
    assert sums[0] == sums[1]


def test_a_parallel_run_is_one_run_and_names_where_each_scenario_ran(runs: tuple[Path, Path]) -> None:
    serial, parallel = runs
    summary = json.loads((parallel / "summary.json").read_text())
    found = [UUID.search(p.read_text()) for p in parallel.iterdir() if p.name not in ("SHA256SUMS", BUNDLE)]
    run_ids = {match.group(0) if match else None for match in found}
    assert run_ids == {summary["run_id"]}
    workers = {s["ran_on"]["worker"] for s in summary["scenarios"]}
    assert workers == {"gw0", "gw1"}
    assert all(s["ran_on"]["host"] for s in summary["scenarios"])
    serial_counts = json.loads((serial / "summary.json").read_text())["counts"]["scenarios"]
    assert summary["counts"]["scenarios"] == serial_counts and serial_counts["passed"] > 0


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_worker_count_exits_2_naming_the_flag(tmp_path: Path, value: str) -> None:
    done = run(tmp_path / "reports", "--workers", value)
    assert done.returncode == 2
    assert "--workers" in done.stderr and value in done.stderr
    assert not (tmp_path / "reports").exists()


def test_a_worker_that_dies_fails_its_scenario_and_a_lost_must_fails_the_run(tmp_path: Path) -> None:
    import os

    env = {
        **os.environ,
        CRASH_SEAM_ENV: "test_a_pod_without_a_runtimeclassname_is_left_as_it_is",
        CRASH_SEAM_ENV + "_MARKER": str(tmp_path / "crashed"),
    }
    done = run(tmp_path / "reports", "--workers", "2", "--tags", "WH-001 or WH-002", env=env)
    assert (tmp_path / "crashed").exists()
    assert done.returncode == 1, done.stdout + done.stderr  # NOT CONFORMANT: a MUST scenario was lost
    assert "died" in done.stderr
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    lost = [s for s in summary["scenarios"] if s["outcome"] == "failed"]
    assert [s["nodeid"].rsplit("::", 1)[1] for s in lost] == [env[CRASH_SEAM_ENV]]
    assert "crashed while running" in lost[0]["reason"] and lost[0]["requirements"] == ["WH-001"]
    assert summary["verdict"] != "CONFORMANT"
    others = [s for s in summary["scenarios"] if s["outcome"] != "failed"]
    assert others and all(s["outcome"] == "passed" for s in others)


def test_execnet_gateways_after_the_options_are_workers_too(tmp_path: Path) -> None:
    """``--tx`` (here two local popen gateways; ``ssh=HOST//python=...`` reaches other hosts)."""
    done = run(tmp_path / "reports", "--tags", "WH-001 or WH-002", "--tx", "2*popen")
    assert done.returncode == 3, done.stdout + done.stderr  # PARTIAL: a selection
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    assert {s["ran_on"]["worker"] for s in summary["scenarios"]} <= {"gw0", "gw1"}
    assert [s["outcome"] for s in summary["scenarios"]] == ["passed"] * 3
