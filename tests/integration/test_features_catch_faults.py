"""No false passes: every plausible bug in the reference must fail the requirement it breaks.

Each mutant of ``tests/mutants.py`` is one run of the features (one subprocess, the
mutant applied in-process by the ``tests.mutants`` plugin) on the target it names; two
runs go at a time (this machine has 2 cores). A mutant survives when its run fails no
requirement, or not the ones it names. The kill matrix is printed, and every MUST of the
catalogue must be killed by at least one mutant (except the listed ones no run here can
reach, each with its reason). The guest agent's (Go) mutants are source edits of
``podvm-agent/``, killed when the agent disagrees with the reference pod VM.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from plumbum import local

from sim.harness.catalogue import load_catalogue
from tests.mutants import AGENT_MUTANTS, MUTANTS, UNREACHABLE

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2


def _why_not_runnable(name: str) -> str | None:
    """Why a mutant's target cannot run here (the adaptor target's own LPAR needs root, libvirt's
    daemons and the pod VM image), or None."""
    if MUTANTS[name].target[0] != "adaptor":
        return None
    from sim.lpar import isolated
    from sim.lpar.assets import AssetsMissing, find_assets
    from sim.lpar.diskimage import DiskImageMissing, find_disk_image

    if os.geteuid() != 0:
        return "the adaptor target's isolated LPAR needs root"
    missing = [tool for tool in isolated.TOOLS if isolated._which(tool) is None]
    if missing:
        return f"the adaptor target's isolated LPAR needs {', '.join(missing)}"
    try:
        find_assets(None)
        find_disk_image("s390x")
    except (AssetsMissing, DiskImageMissing) as exc:
        return f"the reference adaptor boots the pod VM images: {exc}"
    return None


def _run(name: str, report_dir: Path) -> tuple[int, set[str], str]:
    """Run the features with one mutant; (exit code, failed requirement ids, output tail)."""
    mutant = MUTANTS[name]
    args = ["-m", "sim", "run", "--target", *mutant.target, "--report-dir", str(report_dir)]
    args += ["-q", "-p", "no:cacheprovider", "-p", "tests.mutants"]
    with local.cwd(ROOT), local.env(PEERPODS_MUTANT=name):
        code, out, err = local[sys.executable][args].run(retcode=None, timeout=600)
    summary = report_dir / "summary.json"
    failed: set[str] = set()
    if summary.exists():
        data = json.loads(summary.read_text())
        failed = {r["id"] for r in data["requirements"] if r["verdict"] == "failed"}
    return int(code), failed, (out + err)[-2000:]


@pytest.fixture(scope="module")
def kill_matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, set[str], str]]:
    base = tmp_path_factory.mktemp("mutants")
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        runnable = [name for name in MUTANTS if _why_not_runnable(name) is None]
        futures = {name: pool.submit(_run, name, base / name) for name in runnable}
        matrix = {name: future.result() for name, future in futures.items()}
    print("\nkill matrix (mutant -> requirements its run failed):")
    for name, (code, failed, _) in matrix.items():
        mark = "killed " if failed else "SURVIVED"
        print(f"  {mark} {name:42} [{MUTANTS[name].area}] exit {code}: {' '.join(sorted(failed)) or '-'}")
    return matrix


def test_there_are_enough_plausible_mutants_in_every_area() -> None:
    areas = {mutant.area.split("/")[0] for mutant in MUTANTS.values()}
    assert len(MUTANTS) >= 20
    assert {"webhook", "admission", "initdata", "adaptor", "scheduler", "provider", "lpar"} <= areas
    assert {m.area for m in MUTANTS.values() if m.area.startswith("initdata/")} == {
        "initdata/kata",
        "initdata/adaptor",
        "initdata/podvm",
    }
    assert AGENT_MUTANTS, "the guest agent needs mutants too"


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_every_mutant_is_killed_by_the_requirements_it_breaks(
    kill_matrix: dict[str, tuple[int, set[str], str]], name: str
) -> None:
    if name not in kill_matrix:
        pytest.skip(f"mutant {name} not run: {_why_not_runnable(name)}")
    code, failed, tail = kill_matrix[name]
    assert failed, f"mutant {name} SURVIVED: its run failed no requirement (exit {code})\n{tail}"
    missing = MUTANTS[name].breaks - failed
    assert not missing, f"mutant {name} should fail {sorted(missing)}; it failed {sorted(failed)}\n{tail}"


def test_every_must_is_killed_by_some_mutant(kill_matrix: dict[str, tuple[int, set[str], str]]) -> None:
    catalogue = load_catalogue()
    musts = {r.id for r in catalogue.requirements if r.level == "MUST"}
    killed = set().union(*(failed for _, failed, _ in kill_matrix.values()))
    assert set(UNREACHABLE) <= musts, f"UNREACHABLE names no MUST: {sorted(set(UNREACHABLE) - musts)}"
    unkilled = sorted(musts - killed - set(UNREACHABLE))
    assert not unkilled, f"no mutant kills these MUST requirements: {unkilled}"
    reached = sorted(set(UNREACHABLE) & killed)
    print(
        f"\nMUSTs killed by some mutant: {len(musts & killed)} of {len(musts)}; "
        f"not reachable here: {sorted(set(UNREACHABLE))} (killed anyway, collaterally: {reached})"
    )


# --- the guest agent (Go) ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def go() -> str:
    from sim.lpar.builder import BuildError, go_binary

    try:
        return go_binary()
    except BuildError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", sorted(AGENT_MUTANTS))
def test_every_agent_mutant_disagrees_with_the_reference(go: str, tmp_path: Path, name: str) -> None:
    from sim.lpar.assets import AGENT_SOURCE
    from sim.peerpods.podvm import process_user_data
    from tests.unit.test_lpar_agent import CASES, build_agent, run_agent

    file_name, text, replacement, _breaks = AGENT_MUTANTS[name]
    source = tmp_path / "src"
    shutil.copytree(AGENT_SOURCE, source)
    original = (source / file_name).read_text()
    assert text in original, f"{name}: {file_name} no longer contains {text!r}"
    (source / file_name).write_text(original.replace(text, replacement, 1))
    binary = tmp_path / "podvm-agent"
    build_agent(go, source, binary)
    disagreements = []
    for case, user_data in sorted(CASES.items()):
        work = tmp_path / case.replace(" ", "-").replace("/", "-")
        work.mkdir()
        guest = run_agent(binary, user_data, work)
        reference = json.loads(process_user_data(user_data, work / "reference-root").to_json())
        guest.pop("error"), reference.pop("error")
        if guest != reference:
            disagreements.append(case)
    print(f"\nagent mutant {name}: disagrees on {disagreements}")
    assert disagreements, f"agent mutant {name} SURVIVED: it agrees with the reference on every case"
