"""The built wheel runs the suite outside the checkout: build it, install it into a fresh venv
(dependencies from PyPI, through pip's cache), run ``peerpods-conformance run`` from an empty folder.

Slow (about 30 s, most of it pip installing the dependencies), so marked ``slow``; it stays in
tox's ``tests`` env.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
from plumbum import local

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_installed_wheel_runs_the_suite_from_an_empty_folder(tmp_path: Path) -> None:
    python = local[sys.executable]
    # Built from a copy of the tracked files: a checkout's build/ folder may hold modules
    # that no longer exist, and setuptools would ship them.
    source = tmp_path / "source"
    for name in local["git"]("-C", str(ROOT), "ls-files", "-z").split("\0"):
        if name and (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    python("-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source), timeout=300)
    (wheel,) = wheels.glob("peerpods_conformance-*.whl")
    venv = tmp_path / "venv"
    python("-m", "venv", str(venv), timeout=120)
    local[str(venv / "bin" / "pip")]("install", "-q", str(wheel), timeout=600)
    empty = tmp_path / "empty"
    empty.mkdir()
    reports = tmp_path / "reports"
    with local.cwd(empty), local.env(PYTHONPATH=""):
        status, out, err = local[str(venv / "bin" / "peerpods-conformance")].run(
            ["run", "--report-dir", str(reports), "-q"], retcode=None, timeout=300
        )
    assert status == 0, f"exit {status}\n{out}\n{err}"
    assert "CONFORMANT" in out
    summary = json.loads((reports / "summary.json").read_text())
    assert summary["verdict"] == "CONFORMANT"
    assert summary["counts"]["scenarios"]["passed"] > 0
    assert summary["scope"]["full"]
    assert list(empty.iterdir()) == [], "the run wrote into the folder it was started from"
    # A wheel has no commit: the certificate names it by its own SHA-256, and its installed files'.
    installation = summary["suite"]["installation"]
    assert installation["wheel_sha256"] == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert len(installation["record_sha256"]) == 64
    assert installation["wheel_sha256"] in (reports / "report.html").read_text()
    # The installed package holds its own features: none is read from this checkout.
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert sorted(p.name for p in (site / "sim" / "features").glob("*.feature")) == sorted(
        p.name for p in (ROOT / "features").glob("*.feature")
    )
    # Its own modules, inside sim: no top-level steps, nothing stale from a build folder.
    assert not (site / "steps").exists(), "the wheel installs a top-level package steps"
    modules = {
        str(p.relative_to(site / "sim")) for p in (site / "sim").rglob("*.py") if "steps" not in p.parts
    }
    assert modules == {str(p.relative_to(ROOT / "sim")) for p in (ROOT / "sim").rglob("*.py")}
    assert {p.name for p in (site / "sim" / "steps").glob("*.py")} == {
        p.name for p in (ROOT / "steps").glob("*.py")
    }
