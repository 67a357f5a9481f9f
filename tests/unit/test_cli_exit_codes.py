"""Exit codes that mean what they say: an install problem is 2 (naming the fix), never a verdict;
result files that cannot be written are 4; SIGINT is 130 and SIGTERM 143, both "interrupted"."""

from __future__ import annotations

import hashlib
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.harness import needs
from sim.harness.report.output import RESULT_FILES

ROOT = Path(__file__).resolve().parents[2]
LPAR = "libvirt,pycdlib"
WEBHOOK = "cryptography,granian,rloop,orjson,hypothesis,trustme"


def without(absent: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.without_extras", absent, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("absent", "args", "extra"),
    [
        (LPAR, ("run", "--target", "lpar"), "lpar"),
        (LPAR, ("run", "--target", "adaptor"), "lpar"),
        (LPAR, ("run", "--target", "cluster", "--libvirt-uri", "qemu:///system"), "lpar"),
        (LPAR, ("lpar", "check"), "lpar"),
        (LPAR, ("lpar", "try", "pod.yaml"), "lpar"),
        (WEBHOOK, ("run", "--target", "webhook"), "webhook"),
        (WEBHOOK, ("webhook", "serve"), "webhook"),
        (WEBHOOK, ("diff", "--help-not"), "webhook"),
    ],
)
def test_a_missing_extra_exits_2_naming_the_install(
    absent: str, args: tuple[str, ...], extra: str, tmp_path: Path
) -> None:
    report_dir = tmp_path / "reports"
    args = (*args, "--report-dir", str(report_dir)) if args[0] == "run" else args
    completed = without(absent, *args)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert f"pip install 'peerpods-conformance[{extra}]'" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not report_dir.exists(), "nothing is created before the refusal"


@pytest.mark.parametrize("command", ["webhook", "diff", "lpar", "adaptor", "cluster", "run"])
def test_help_always_works(command: str) -> None:
    completed = without(f"{LPAR},{WEBHOOK}", command, "--help")
    assert completed.returncode == 0, completed.stderr
    assert "usage: peerpods-conformance" in completed.stdout


def test_the_placeholder_help_says_what_to_install() -> None:
    completed = without(WEBHOOK, "webhook", "--help")
    assert "pip install 'peerpods-conformance[webhook]'" in " ".join(completed.stdout.split())


def test_extras_of_modules() -> None:
    assert needs.extra_of("pycdlib.pycdlibexception") == "lpar"
    assert needs.extra_of("cryptography.x509") == "webhook"
    assert needs.extra_of("yaml") is None
    assert needs.missing_part("x", "sim.lpar") is None


def _sums(directory: Path) -> dict[str, str]:
    return {n: hashlib.sha256((directory / n).read_bytes()).hexdigest() for n in RESULT_FILES}


def _limited(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("limit", [20_000, 100_000, 400_000])
def test_a_report_dir_that_fills_up_exits_4_and_keeps_the_previous_set(tmp_path: Path, limit: int) -> None:
    """A file-size limit makes writes fail as a full disk does: at junit.xml (pytest's own write),
    at cucumber.json, at summary.json."""
    first = subprocess.run(
        [sys.executable, "-m", "sim", "run", "--report-dir", str(tmp_path), "--tags", "NL-002"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert first.returncode == 3, first.stderr
    before = _sums(tmp_path)
    completed = subprocess.run(
        [sys.executable, "-m", "sim", "run", "--report-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=lambda: _limited(limit),
    )
    assert completed.returncode == 4, completed.stdout[-2000:] + completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr and "INTERNALERROR" not in completed.stdout
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot write the result files" in lines[0], completed.stderr
    assert _sums(tmp_path) == before
    assert not list(tmp_path.glob(".run-*"))


def _slow_run(report_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sim", "run", "--report-dir", str(report_dir), "-p", "tests.slow_scenarios"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_run_says_interrupted_and_removes_the_staging(
    tmp_path: Path, signum: int, status: int
) -> None:
    process = _slow_run(tmp_path)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".run-*")):
        assert time.monotonic() < deadline and process.poll() is None, "the run never started"
        time.sleep(0.05)
    time.sleep(1.5)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == status, out[-2000:] + err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    assert re.search(r"^interrupted after \d+ of \d+ scenarios in ", out, re.M), out[-2000:]
    assert "KeyboardInterrupt" not in out
    assert not list(tmp_path.glob(".run-*"))
    assert not any((tmp_path / name).exists() for name in RESULT_FILES)


def test_a_failure_while_an_interrupted_run_stops_keeps_the_interrupted_status(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sim", "run", "--report-dir", str(tmp_path), "-p", "tests.stopping_fails"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".run-*")):
        assert time.monotonic() < deadline and process.poll() is None, "the run never started"
        time.sleep(0.05)
    time.sleep(1.5)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out[-2000:] + err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    said = "peerpods-conformance: interrupted; while stopping: pod VM resources left"
    assert lines[-1].startswith(said), err
    assert "target error" not in err and "Traceback" not in err
    assert not list(tmp_path.glob(".run-*"))


@pytest.mark.parametrize("delay", [0.3, 0.6])
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_start_up_is_interrupted_too(
    tmp_path: Path, signum: int, status: int, delay: float
) -> None:
    process = _slow_run(tmp_path)
    time.sleep(delay)
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == status, out[-2000:] + err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    assert not list(tmp_path.glob(".run-*"))


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_late_signal_while_the_session_ends_is_interrupted_too(
    tmp_path: Path, signum: int, status: int
) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sim",
            "run",
            "--report-dir",
            str(tmp_path),
            "--tags",
            "NL-002",
            "-p",
            "tests.slow_finish",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    assert "slow_finish: waiting" in line, line
    process.send_signal(signum)
    out, err = process.communicate(timeout=60)
    assert process.returncode == status, out[-2000:] + err[-2000:]
    assert "interrupted" in err and "Traceback" not in err and "TypeError" not in out + err
    assert not list(tmp_path.glob(".run-*"))
    assert not any((tmp_path / name).exists() for name in RESULT_FILES)


def test_a_bad_product_file_exits_2_before_anything_runs(tmp_path: Path) -> None:
    product = tmp_path / "PRODUCT.yaml"
    product.write_text("vendor: Example\nversion: 2\n")
    completed = subprocess.run(
        [sys.executable, "-m", "sim", "run", "--report-dir", str(tmp_path / "r"), "--product", str(product)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 2
    assert "product: missing" in completed.stderr and "version: must be a string" in completed.stderr
    assert "contact: missing" in completed.stderr and not (tmp_path / "r").exists()
    assert completed.stdout == ""


def test_a_target_that_cannot_be_reached_is_no_verdict(tmp_path: Path) -> None:
    """libvirtd not running is a host part missing: exit 2, naming what to start, never 1."""
    pytest.importorskip("libvirt")
    uri = f"qemu+unix:///system?socket={tmp_path / 'no-libvirtd.sock'}"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "sim",
            "run",
            "--target",
            "lpar",
            "--libvirt-uri",
            uri,
            "--report-dir",
            str(tmp_path / "r"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 2, completed.stderr
    assert "unreachable LPAR" in completed.stderr and uri in completed.stderr  # checked before anything runs
    assert "libvirtd" in completed.stderr and "CONFORMANT" not in completed.stderr
    assert not (tmp_path / "r").exists()
