"""Several LPARs: ``--libvirt-uri`` given once per LPAR, each worker bound to one, each scenario
naming the LPAR it ran on; an LPAR that does not answer is refused before anything runs.

The LPARs here: libvirt's simulator and a private libvirtd of the suite's (:class:`IsolatedLpar`,
real s390x guests), so no other run on qemu:///system is disturbed or disturbs this one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

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
        tmp_path / "reports", "--libvirt-uri", uris[0], "--libvirt-uri", uris[1], "--tags", "VM-001 or VM-006"
    )
    assert done.returncode == 3, done.stdout + done.stderr  # PARTIAL: a selection, every MUST passed
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    placed = {(s["ran_on"]["worker"], s["ran_on"]["lpar"]) for s in summary["scenarios"]}
    assert {lpar for _, lpar in placed} == set(uris)
    assert placed <= {("gw0", uris[0]), ("gw1", uris[1])}  # --workers defaults to one per LPAR
    assert summary["target"]["libvirt URI"] == ", ".join(uris)
