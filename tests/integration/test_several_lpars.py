"""Several LPARs: ``--libvirt-uri`` given once per LPAR, each worker bound to one, each scenario
naming the LPAR it ran on, each LPAR's facts reported as its own, a scenario that judges the LPAR
itself run once on each; an LPAR that does not answer is refused before anything runs.

The LPARs here: libvirt's simulator, a second simulator described by a file of ours (an s390x
KVM host), and a private libvirtd of the suite's (:class:`IsolatedLpar`, real s390x guests), so
no other run on qemu:///system is disturbed or disturbs this one.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

pytest.importorskip("libvirt")

from sim.lpar import host, isolated
from sim.lpar.isolated import IsolatedLpar
from tests.integration.test_lpar_qemu import _why_not

ROOT = Path(__file__).resolve().parents[2]


def run(report_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", "run", "--target", "lpar", "--report-dir", str(report_dir), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_an_unreachable_lpar_exits_2_naming_it_before_anything_runs(tmp_path: Path) -> None:
    bad = f"qemu:///system?socket={tmp_path / 'no-such-libvirt-sock'}"
    done = run(tmp_path / "reports", "--libvirt-uri", host.TEST_URI, "--libvirt-uri", bad, "--workers", "2")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--libvirt-uri {bad}: unreachable LPAR" in done.stderr
    assert not (tmp_path / "reports").exists()
    assert "test session starts" not in done.stdout


def test_fewer_workers_than_lpars_exit_2(tmp_path: Path) -> None:
    done = run(tmp_path / "r", "--libvirt-uri", host.TEST_URI, "--libvirt-uri", "test:///x", "--workers", "1")
    assert done.returncode == 2 and "each LPAR needs a worker of its own" in done.stderr


def test_another_dist_mode_than_load_with_several_lpars_exits_2(tmp_path: Path) -> None:
    lpars = ["--libvirt-uri", host.TEST_URI, "--libvirt-uri", "test:///x"]
    done = run(tmp_path / "r", *lpars, "--workers", "2", "--dist", "loadfile")
    assert done.returncode == 2 and "--dist loadfile with several LPARs" in done.stderr
    assert not (tmp_path / "r").exists()


@pytest.fixture
def private_lpar() -> Iterator[str]:
    why = _why_not()
    if why is not None:
        pytest.skip(f"no emulated LPAR here: {why}")
    base = isolated.default_base() / f"test-{uuid.uuid4().hex[:8]}"
    base.mkdir(parents=True, mode=0o755)
    try:
        with IsolatedLpar(base=base) as lpar:
            yield lpar.uri
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_each_worker_is_bound_to_one_lpar_and_each_scenario_names_it(
    tmp_path: Path, private_lpar: str
) -> None:
    uris = [host.TEST_URI, private_lpar]
    done = run(
        tmp_path / "reports",
        *("--libvirt-uri", uris[0], "--libvirt-uri", uris[1]),
        *("--tags", "VM-001 or VM-006 or LP-004"),
    )
    assert done.returncode == 3, done.stdout + done.stderr  # PARTIAL: a selection, every MUST passed
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    placed = {(s["ran_on"]["worker"], s["ran_on"]["lpar"]) for s in summary["scenarios"]}
    assert {lpar for _, lpar in placed} == set(uris)
    assert placed <= {("gw0", uris[0]), ("gw1", uris[1])}  # --workers defaults to one per LPAR
    assert summary["target"]["libvirt URI"] == ", ".join(uris)
    # the LPAR judged on each: the simulator has none to inspect, the private libvirtd's guest does
    scenarios = summary["scenarios"]
    judged = {s["ran_on"]["lpar"]: s["outcome"] for s in scenarios if "LP-004" in s["requirements"]}
    assert judged == {uris[0]: "not applicable", uris[1]: "passed"}
    assert "emulator" in summary["lpars"][uris[1]] and "emulator" not in summary["lpars"][uris[0]]
    assert "boot concurrency" in summary["lpars"][uris[1]]


#: A second simulated LPAR for libvirt's test driver (test:///<this file>): another machine.
SECOND_LPAR = """<node>
  <cpu><mhz>5200</mhz><model>s390x</model><active>4</active><nodes>1</nodes><sockets>1</sockets>
    <cores>4</cores><threads>1</threads></cpu>
  <memory>8388608</memory>
</node>
"""
EACH_LPAR_SCENARIO = "The emulated LPAR is judged on what QEMU really offers"


@pytest.fixture
def two_simulated_lpars(tmp_path: Path) -> list[str]:
    described = tmp_path / "lpar2.xml"
    described.write_text(SECOND_LPAR)
    return [host.TEST_URI, f"test://{described}"]


def test_each_lpar_has_its_own_facts_and_the_lpar_judging_scenario_runs_on_each(
    tmp_path: Path, two_simulated_lpars: list[str]
) -> None:
    uris = two_simulated_lpars
    reports = tmp_path / "reports"
    lpars = ["--libvirt-uri", uris[0], "--libvirt-uri", uris[1]]
    done = run(reports, *lpars, "--workers", "2", "--tags", "LP-004 or LP-002 or VM-001")
    assert done.returncode == 3, done.stdout + done.stderr  # PARTIAL: a selection, every MUST passed
    summary = json.loads((reports / "summary.json").read_text())

    jsonschema.validate(summary, json.loads((ROOT / "schemas" / "summary.schema.json").read_text()))
    # each LPAR's facts, from a worker bound to it; the target keeps what they share
    assert list(summary["lpars"]) == uris
    for uri, facts in summary["lpars"].items():
        assert facts["libvirt URI"] == uri and facts["hypervisor"].startswith("TEST")
    assert summary["lpars"][uris[0]]["KVM host"] != summary["lpars"][uris[1]]["KVM host"]
    assert summary["lpars"][uris[1]]["KVM host"] == "s390x, 4 CPUs, 8192 MiB"
    assert summary["target"]["libvirt URI"] == ", ".join(uris)
    assert "KVM host" not in summary["target"] and "libvirt version" not in summary["target"]
    html = (reports / "report.html").read_text()
    for uri in uris:
        assert f"LPAR {uri}</h3>" in html
    assert "s390x, 4 CPUs, 8192 MiB" in html

    # the scenario that judges the LPAR itself: once per LPAR, on a worker bound to it, counted twice
    judged = [s for s in summary["scenarios"] if s["scenario"].startswith(EACH_LPAR_SCENARIO)]
    assert [(s["scenario"], s["ran_on"]["lpar"]) for s in judged] == [
        (f"{EACH_LPAR_SCENARIO} (LPAR: {uri})", uri) for uri in uris
    ]
    assert [s["nodeid"].rsplit("[", 1)[1] for s in judged] == ["lpar1]", "lpar2]"]
    assert all(s["outcome"] == "not applicable" for s in judged)  # the simulator boots no guest
    assert summary["counts"]["scenarios"]["not applicable"] == 2
    others = [s for s in summary["scenarios"] if s not in judged]
    assert others and all("LPAR:" not in s["scenario"] for s in others)
    junit = (reports / "junit.xml").read_text()
    cucumber = json.loads((reports / "cucumber.json").read_text())
    names = [e["name"] for f in cucumber for e in f["elements"]]
    ids = [e["id"] for f in cucumber for e in f["elements"]]
    for uri in uris:
        name = f"{EACH_LPAR_SCENARIO} (LPAR: {uri})"
        assert f'name="{name}"' in junit and names.count(name) == 1
    assert len(set(ids)) == len(ids)


def test_one_lpar_runs_the_lpar_judging_scenario_once_under_its_own_name(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    done = run(reports, "--libvirt-uri", host.TEST_URI, "--tags", "LP-004")
    assert done.returncode in (3, 5), done.stdout + done.stderr  # a selection; nothing applicable
    summary = json.loads((reports / "summary.json").read_text())
    assert "lpars" not in summary and summary["target"]["libvirt URI"] == host.TEST_URI
    assert [s["scenario"] for s in summary["scenarios"]] == [EACH_LPAR_SCENARIO]
    assert not re.search(r"\[lpar\d+\]", summary["scenarios"][0]["nodeid"])


@pytest.mark.skipif(_why_not() is not None, reason=f"no emulated LPAR here: {_why_not()}")
@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["serial", "2-workers"])
def test_one_lpars_boot_concurrency_is_in_its_certificate(tmp_path: Path, workers: list[str]) -> None:
    """Chosen at the first boot, so known only at the end: a serial run asks its target then, a
    parallel one takes it from its workers. Real pod VMs (libvirt's simulator boots none)."""
    done = run(tmp_path / "r", "--libvirt-uri", host.SYSTEM_URI, "--tags", "GI-001 or VM-001", *workers)
    assert done.returncode == 3, done.stdout + done.stderr  # PARTIAL: a selection that passed
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert "lpars" not in summary  # one LPAR: its facts are the target's
    chosen = summary["target"]["boot concurrency"]
    assert re.fullmatch(r"\d+ at once: (measured: .+|one core for this process .+)", chosen), chosen
    assert chosen in done.stderr  # the line each LPAR prints at the end says the same
    assert "boot concurrency" in (tmp_path / "r" / "report.html").read_text()
