"""The feature files on the ``webhook`` target, against the reference server as a real process.

This is the certification a user runs on their own build: ``run --target webhook`` with
the endpoint's URL and CA. The reference server must pass every applicable scenario; a
build that deviates (here: another extended-resource name) must fail the run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from sim.server.launch import launched

ROOT = Path(__file__).resolve().parents[2]


def certify(url: str, ca: Path, report_dir: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``peerpods-conformance run --target webhook`` as a user runs it; the summary it wrote."""
    command = [sys.executable, "-m", "sim", "run", "--target", "webhook", "--webhook-url", url]
    command += ["--webhook-ca", str(ca), "--report-dir", str(report_dir)]
    completed = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    summary = json.loads((report_dir / "summary.json").read_text())
    return completed, summary


def test_reference_server_passes_every_applicable_scenario(tmp_path: Path) -> None:
    with launched() as server:
        completed, summary = certify(server.url, server.ca, tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert summary["verdict"] == "CONFORMANT"
    assert summary["counts"]["scenarios"]["failed"] == 0
    assert summary["counts"]["scenarios"]["passed"] >= 20
    assert summary["target"]["url"] == server.url
    assert summary["target"]["certificate_subject"] == "CN=127.0.0.1"
    reasons = {s["reason"] for s in summary["scenarios"] if s["outcome"] == "not applicable"}
    assert all("not applicable on target 'webhook'" in r for r in reasons)


def test_a_deviating_build_fails_certification(tmp_path: Path) -> None:
    with launched(["--extended-resource", "example.com/vm"]) as server:
        completed, summary = certify(server.url, server.ca, tmp_path)
    assert completed.returncode != 0
    assert summary["verdict"] == "NOT CONFORMANT"
    assert summary["counts"]["scenarios"]["failed"] > 0


def test_an_unreachable_endpoint_fails_scenarios_with_the_reason(tmp_path: Path) -> None:
    with launched() as server:
        ca = tmp_path / "ca.pem"
        ca.write_bytes(server.ca.read_bytes())
        url = server.url
    completed, summary = certify(url, ca, tmp_path / "report")  # the server is gone now
    assert completed.returncode != 0
    failed = [s for s in summary["scenarios"] if s["outcome"] == "failed"]
    assert failed
    assert any("connection refused" in (s.get("reason") or "") for s in failed), failed[0]
