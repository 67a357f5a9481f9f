"""results.tar.gz, written by `run` and read back by `peerpods-conformance results`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from sim.harness import cli
from sim.harness.report.bundle import BUNDLE, read_results, write_bundle
from sim.harness.report.output import RESULT_FILES

ROOT = Path(__file__).resolve().parents[2]
TAGS = "WH-023 or NL-002 or GI-001"


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("bundle")
    completed = subprocess.run(
        [sys.executable, "-m", "sim", "run", "--report-dir", str(where), "--tags", TAGS, "--color=yes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 3, completed.stdout[-2000:] + completed.stderr
    return where


def members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle) as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def test_run_writes_the_bundle_with_the_five_files_and_the_console_log(report_dir: Path) -> None:
    inside = members(report_dir / BUNDLE)
    assert set(inside) == {*RESULT_FILES, "console.log"}
    for name in RESULT_FILES:
        assert inside[name] == (report_dir / name).read_bytes(), name
    log = inside["console.log"].decode()
    assert "\x1b" not in log and "\r" not in log  # --color=yes colours the terminal, never the log
    assert "Feature: " in log and "FAIL A GPU request" in log and log.rstrip().endswith(BUNDLE)
    with tarfile.open(report_dir / BUNDLE) as tar:
        summary = json.loads(inside["summary.json"])
        assert {m.name.split("/")[0] for m in tar} == {f"peerpods-conformance-{summary['run_id']}"}


def results(*args: str) -> tuple[int, str, str]:
    completed = subprocess.run(
        [sys.executable, "-m", "sim", "results", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return completed.returncode, completed.stdout, completed.stderr


@pytest.mark.parametrize("which", ["bundle", "directory"])
def test_results_prints_the_summary(report_dir: Path, which: str) -> None:
    path = report_dir / BUNDLE if which == "bundle" else report_dir
    status, out, _ = results(str(path))
    summary = json.loads((report_dir / "summary.json").read_text())
    assert status == 0
    assert out.splitlines()[0] == summary["headline"]
    assert f"run {summary['run_id']}" in out
    assert "advisory WH-023" in out and "SHA256SUMS: all match" in out
    assert "not applicable: " in out and "lacking guest" in out


def test_results_detailed_lists_every_scenario(report_dir: Path) -> None:
    status, out, _ = results(str(report_dir / BUNDLE), "--detailed")
    summary = json.loads((report_dir / "summary.json").read_text())
    outcome_lines = [line for line in out.splitlines() if line.startswith("  ") and line[2:3].isalpha()]
    for scenario in summary["scenarios"]:
        assert any(
            scenario["scenario"] in line and line.strip().startswith(scenario["outcome"])
            for line in outcome_lines
        )
    assert status == 0 and "Feature: " in out


def test_a_tampered_file_is_reported(report_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in RESULT_FILES:
        (copy / name).write_bytes((report_dir / name).read_bytes())
    (copy / "junit.xml").write_text("<testsuites/>")
    status, out, _ = results(str(copy))
    assert status == 1 and "junit.xml: MISMATCH" in out


@pytest.mark.parametrize("content", ["missing", "not-a-tar", "no-summary"])
def test_unreadable_results_exit_2_naming_the_path(tmp_path: Path, content: str) -> None:
    path = tmp_path / BUNDLE
    if content == "not-a-tar":
        path.write_text("hello")
    elif content == "no-summary":
        with tarfile.open(path, "w:gz") as tar:
            info = tarfile.TarInfo("top/junit.xml")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"<a/"))
    status, _, err = results(str(path))
    assert status == 2 and str(path) in err and "Traceback" not in err


def test_a_hostile_bundle_is_read_without_extracting_anything(tmp_path: Path) -> None:
    path = tmp_path / BUNDLE
    summary: dict[str, Any] = {"verdict": "CONFORMANT", "scenarios": [], "headline": "CONFORMANT"}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (
            ("../evil", b"x"),
            ("/abs", b"x"),
            ("top/summary.json", json.dumps(summary).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("top/link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    read = read_results(path)
    assert read.summary["verdict"] == "CONFORMANT" and read.members == ["summary.json"]
    assert not (tmp_path.parent / "evil").exists()


def test_the_target_logs_go_under_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"verdict": "PARTIAL", "headline": "PARTIAL", "scenarios": []}))
    server_log = tmp_path / "server.log"
    server_log.write_text("listening\n")
    write_bundle(
        tmp_path / BUNDLE,
        "r1",
        {"summary.json": summary},
        {"webhook/server.log": server_log, "gone.log": tmp_path / "absent"},
        0,
    )
    assert set(members(tmp_path / BUNDLE)) == {"summary.json", "logs/webhook/server.log"}
    assert cli.main(["results", str(tmp_path / BUNDLE)]) == 0
    assert "logs in the bundle: logs/webhook/server.log" in capsys.readouterr().out


def test_a_cluster_run_bundles_the_control_plane_and_webhook_logs(tmp_path: Path) -> None:
    from sim.harness.targets.cluster.build import find_binaries

    if find_binaries() is None:
        pytest.skip("the cluster target's control plane is not built (peerpods-conformance cluster prepare)")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "sim",
            "run",
            "--target",
            "cluster",
            "--no-build",
            "--tags",
            "WH-001",
            "--report-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 3, completed.stdout[-2000:] + completed.stderr[-2000:]
    inside = members(tmp_path / BUNDLE)
    for component in ("etcd", "kube-apiserver", "kube-scheduler"):
        assert f"logs/controlplane/{component}.log" in inside
    servers = [name for name in inside if name.startswith("logs/webhook-server/")]
    assert len(servers) == 1 and servers[0].count("/") == 2, servers
