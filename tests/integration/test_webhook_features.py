"""The feature files on the ``webhook`` target, against the reference server as a real process.

This is the certification a user runs on their own build: ``run --target webhook`` with
the endpoint's URL and CA, and the MutatingWebhookConfiguration they deploy. The reference
server must pass every applicable scenario; a build that deviates (here: another
extended-resource name) must fail the run, and so must a configuration that does not
exclude what its profile requires or sends nothing at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.server.launch import LaunchedServer, launched

ROOT = Path(__file__).resolve().parents[2]
PROFILES = {p: ROOT / "fixtures" / "admission" / f"{p}-mwc.yaml" for p in ("caa-chart", "openshift")}
NAMESPACE_IDS = {"NS-001", "NS-002", "NS-003"}


def certify(
    url: str, ca: Path, report_dir: Path, *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``peerpods-conformance run --target webhook`` as a user runs it; the summary it wrote."""
    command = [sys.executable, "-m", "sim", "run", "--target", "webhook", "--webhook-url", url]
    command += ["--webhook-ca", str(ca), "--report-dir", str(report_dir), *extra]
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


@pytest.fixture(scope="module")
def server() -> Iterator[LaunchedServer]:
    with launched() as running:
        yield running


#: SHOULD requirements CAA v0.22.0 fails, and the reference server with it (advisories, never the verdict).
UPSTREAM_DEFECTS = {"WH-023"}


def scenarios_of(summary: dict[str, Any], ids: set[str]) -> list[dict[str, Any]]:
    return [s for s in summary["scenarios"] if ids & set(s["requirements"])]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_reference_server_passes_every_applicable_scenario(
    server: LaunchedServer, tmp_path: Path, profile: str
) -> None:
    completed, summary = certify(server.url, server.ca, tmp_path, "--webhook-config", str(PROFILES[profile]))
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert summary["verdict"] == "CONFORMANT"
    failed = [s for s in summary["scenarios"] if s["outcome"] == "failed"]
    assert all(set(s["requirements"]) <= UPSTREAM_DEFECTS for s in failed), failed
    assert [a["id"] for a in summary["advisories"]] == sorted(UPSTREAM_DEFECTS)
    assert summary["counts"]["scenarios"]["passed"] >= 20
    assert summary["target"]["url"] == server.url
    assert summary["target"]["certificate_subject"] == "CN=127.0.0.1"
    assert f"({profile} profile, detected" in summary["target"]["webhook configuration"]
    namespace_scenarios = scenarios_of(summary, NAMESPACE_IDS)
    assert {s["outcome"] for s in namespace_scenarios} == {"passed", "not applicable"}
    other = {"caa-chart": "openshift", "openshift": "caa-chart"}[profile]
    for scenario in namespace_scenarios:
        if scenario["outcome"] == "not applicable" and not needs_a_capability(scenario):
            assert f"written for the {other!r} profile" in scenario["reason"], scenario
    reasons = {s["reason"] for s in summary["scenarios"] if s["outcome"] == "not applicable"}
    assert all("not applicable on target 'webhook'" in r or "profile" in r for r in reasons)


def test_without_the_deployed_configuration_namespace_scenarios_are_not_applicable(
    server: LaunchedServer, tmp_path: Path
) -> None:
    completed, summary = certify(server.url, server.ca, tmp_path)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    namespace_scenarios = [s for s in scenarios_of(summary, NAMESPACE_IDS) if not needs_a_capability(s)]
    assert len(namespace_scenarios) >= 9
    for scenario in namespace_scenarios:
        assert scenario["outcome"] == "not applicable", scenario
        assert "give the MutatingWebhookConfiguration you deploy" in scenario["reason"]


def needs_a_capability(scenario: dict[str, Any]) -> bool:
    """A scenario not applicable because it needs what the webhook target has not (nodes, pod VMs)."""
    return scenario["outcome"] == "not applicable" and ": needs " in str(scenario["reason"])


def _variant(tmp_path: Path, profile: str, edit: Callable[[str], str]) -> Path:
    path = tmp_path / f"{profile}-variant.yaml"
    path.write_text(edit(PROFILES[profile].read_text()))
    return path


def test_a_configuration_that_does_not_exclude_kube_system_fails(
    server: LaunchedServer, tmp_path: Path
) -> None:
    config = _variant(tmp_path, "caa-chart", lambda text: text.replace("            - kube-system\n", ""))
    completed, summary = certify(
        server.url, server.ca, tmp_path / "r", "--webhook-config", str(config), "--profile", "caa-chart"
    )
    assert completed.returncode == 1, completed.stdout[-3000:]
    failed = [s for s in summary["scenarios"] if s["outcome"] == "failed"]
    failed = [s for s in failed if not set(s["requirements"]) <= UPSTREAM_DEFECTS]
    assert [s["scenario"] for s in failed] == [
        "Under the CAA chart profile, peer pods in kube-system are never sent to the webhook"
    ]
    assert "was sent to the webhook: ['CREATE']" in failed[0]["reason"]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_a_configuration_that_sends_nothing_proves_no_exclusion(
    server: LaunchedServer, tmp_path: Path, profile: str
) -> None:
    def delete_only(text: str) -> str:  # registered for DELETE only: no pod is ever sent
        config = yaml.safe_load(text)
        for webhook in config["webhooks"]:
            for rule in webhook["rules"]:
                rule["operations"] = ["DELETE"]
        return yaml.safe_dump(config)

    config = _variant(tmp_path, profile, delete_only)
    completed, summary = certify(
        server.url, server.ca, tmp_path / "r", "--webhook-config", str(config), "--tags", "NS-001 or NS-002"
    )
    assert completed.returncode == 1, completed.stdout[-3000:]
    applicable = [s for s in summary["scenarios"] if s["outcome"] != "not applicable"]
    assert applicable and all(s["outcome"] == "failed" for s in applicable), applicable
    assert all("the configuration sends nothing" in s["reason"] for s in applicable)


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
