"""`peerpods-conformance list`: what the suite checks, and what a target can answer, without a run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.harness import cli
from sim.harness.catalogue import feature_scenarios, load_catalogue


def listed(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = cli.main(["list", *args])
    return status, capsys.readouterr().out


def test_the_json_lists_every_requirement_tag_and_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = listed(capsys, "--json")
    assert status == 0
    data = json.loads(out)
    assert [r["id"] for r in data["requirements"]] == [r.id for r in load_catalogue().requirements]
    assert len(data["scenarios"]) == len(feature_scenarios())
    tags = {t["tag"]: t for t in data["tags"]}
    assert tags["WH-001"]["scenarios"] == sum("WH-001" in s["requirements"] for s in data["scenarios"])
    assert tags["needs-guest"]["meaning"].startswith("needs pod VMs really boot")
    assert data["target"] is None


def test_a_target_answers_only_what_it_can(capsys: pytest.CaptureFixture[str]) -> None:
    _, out = listed(capsys, "scenarios", "--target", "webhook", "--json")
    data = json.loads(out)
    guest = [s for s in data["scenarios"] if "guest" in s["needs"]]
    mutation = [s for s in data["scenarios"] if s["needs"] == ["mutation"]]
    assert guest and all(s["answerable"] is False and "lacks guest" in s["why"] for s in guest)
    assert mutation and all(s["answerable"] is True and s["why"] is None for s in mutation)
    assert data["target"]["name"] == "webhook"


def test_the_table_says_what_the_json_says(capsys: pytest.CaptureFixture[str]) -> None:
    _, out = listed(capsys, "scenarios", "--target", "reference", "--json")
    answerable = sum(s["answerable"] for s in json.loads(out)["scenarios"])
    _, table = listed(capsys, "scenarios", "--target", "reference")
    assert f"target reference can answer {answerable}," in table
    assert sum(" yes " in row for row in table.splitlines()[2:]) == answerable


def test_tables_have_a_title_per_part(capsys: pytest.CaptureFixture[str]) -> None:
    _, out = listed(capsys)
    assert out.startswith("REQUIREMENTS (")
    assert "\nTAGS (" in out and "\nSCENARIOS (" in out


def test_list_never_touches_reports(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    listed(capsys, "--json")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["--collect-only", "--co"])
def test_run_collect_only_is_refused_pointing_to_list(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, flag: str
) -> None:
    assert cli.main(["run", "--report-dir", str(tmp_path / "r"), flag]) == 2
    err = capsys.readouterr().err
    assert "peerpods-conformance list" in err
    assert not (tmp_path / "r").exists()
