"""The console of a conformance run, as an operator sees it in a terminal (a pseudo-terminal here)
and as a CI log keeps it (a pipe)."""

from __future__ import annotations

import errno
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ESC = "\x1b"
#: WH-023 fails on the reference (an advisory), NL-002 passes, GI-001 is not applicable there.
TAGS = "WH-023 or NL-002 or GI-001"
FAILING_STEP = 'Then the pod\'s "default_gpus" annotation is an integer Kata accepts'


def in_terminal(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as its stdout and stderr; return (status, output)."""
    leader, follower = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "PY_COLORS")}
    environment.update({"TERM": "xterm-256color", "COLUMNS": "120", **(env or {})})
    process = subprocess.Popen(
        [sys.executable, "-m", "sim", *args], cwd=ROOT, stdout=follower, stderr=follower, env=environment
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError as exc:  # EIO: the child closed the terminal
            if exc.errno != errno.EIO:
                raise
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def plain(text: str) -> str:
    """What the terminal shows: no colour, and a line overwritten after a carriage return gone."""
    uncoloured = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return "\n".join(line.rsplit("\r", 1)[-1] for line in uncoloured.split("\n"))


@pytest.fixture(scope="module")
def terminal_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str]:
    report_dir = tmp_path_factory.mktemp("console")
    return in_terminal(["run", "--report-dir", str(report_dir), "--tags", TAGS])


def test_features_and_scenarios_stream_with_outcome_reason_and_duration(
    terminal_run: tuple[int, str],
) -> None:
    status, output = terminal_run
    assert status == 3, output
    text = plain(output)
    assert re.search(r"^Feature: .+$", text, re.M)
    assert re.search(r"^  \[ ?\d+/\d+\] PASS .+ \(\d+\.\d\ds\)$", text, re.M), text
    assert re.search(r"^  \[ ?\d+/\d+\] N/A  .+ - needs guest \(\d+\.\d\ds\)$", text, re.M), text
    assert re.search(r"^  \[ ?\d+/\d+\] FAIL A GPU request written 1Ki", text, re.M), text
    assert re.search(r"^\d+ scenarios in \d+\.\ds: \d+ passed, 1 failed, \d+ not applicable$", text, re.M)


def test_a_failure_shows_its_gherkin_step_and_message_in_a_few_lines(terminal_run: tuple[int, str]) -> None:
    lines = plain(terminal_run[1]).splitlines()
    start = next(i for i, line in enumerate(lines) if "FAIL A GPU request" in line)
    assert lines[start + 1].strip() == FAILING_STEP
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("      "):
            break
        block.append(line)
    assert "default_gpus is '1Ki'" in " ".join(block)
    assert 2 <= len(block) <= 9
    assert "-v shows pytest's traceback" in block[-1]


def test_no_pytest_internals_no_staging_paths_no_rootdir(terminal_run: tuple[int, str]) -> None:
    output = terminal_run[1]
    for leak in ("rootdir:", ".run-", "call_fixture_func", "generated xml file", "test session starts"):
        assert leak not in output


def test_colour_on_a_terminal(terminal_run: tuple[int, str]) -> None:
    assert f"{ESC}[" in terminal_run[1]


def test_the_running_scenario_shows_on_a_terminal_then_gives_way(terminal_run: tuple[int, str]) -> None:
    output = terminal_run[1]
    assert re.search(r"\r  \[ ?1/\d+\] running: \S", output)
    assert "running:" not in plain(output)  # each is overwritten by the scenario's outcome


def test_no_colour_with_no_color(tmp_path: Path) -> None:
    status, output = in_terminal(["run", "--report-dir", str(tmp_path), "--tags", TAGS], {"NO_COLOR": "1"})
    assert status == 3 and ESC not in output and "FAIL A GPU request" in output


def test_no_colour_when_not_a_terminal(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "sim", "run", "--report-dir", str(tmp_path), "--tags", TAGS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 3
    assert ESC not in completed.stdout + completed.stderr and "FAIL A GPU request" in completed.stdout


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    status, output = in_terminal(["run", "--report-dir", str(tmp_path), "--tags", TAGS, "-v"])
    assert status == 3
    assert "traceback: A GPU request written 1Ki" in plain(output)
    assert "steps/webhook_steps.py" in output


def test_quiet_shows_only_failures_and_the_counts(tmp_path: Path) -> None:
    status, output = in_terminal(["run", "--report-dir", str(tmp_path), "--tags", TAGS, "-q"])
    text = plain(output)
    assert status == 3 and " PASS " not in text and "FAIL A GPU request" in text
