"""The features can fail: each plausible bug in the reference must fail the requirement it breaks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("mutant", "broken"),
    [
        ("webhook-blind-to-init-containers", {"WH-009"}),
        ("config-map-beats-annotation", {"ID-001"}),
        ("adaptor-ignores-limit", {"NL-001", "NL-002", "NL-005"}),
    ],
)
def test_a_broken_reference_fails_the_requirement_it_breaks(
    tmp_path: Path, mutant: str, broken: set[str]
) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "sim", "run", "--report-dir", str(tmp_path), "-q", "-p", "tests.mutants"],
        cwd=ROOT,
        env={**os.environ, "PEERPODS_MUTANT": mutant},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    failed = {r["id"] for r in summary["requirements"] if r["verdict"] == "failed"}
    assert broken <= failed, f"{mutant} should fail {sorted(broken)}, failed {sorted(failed)}"
