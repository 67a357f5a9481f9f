"""Ctrl-C in the middle of an adaptor run: the run itself removes what it made.

A run of the adaptor target makes an isolated LPAR (network namespaces ``ppc-<pid>-<n>``, its
folder under the LPAR base), adaptor folders (``/run/ppa-<pid>-<n>``) and processes (libvirtd,
virtlogd, dnsmasq, QEMU, the adaptors). SIGINT sent to the run's process group, as a terminal
sends it, once a scenario's adaptor is up, must leave none of them, and the run must exit with
the interrupted status. Only what this test's run made is looked at: other runs may be live.

Needs root, libvirt's daemons and the pod VM image (the reference adaptor boots it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("libvirt")

from sim.harness.targets.adaptorprocess import launcher
from sim.lpar import isolated, netns
from tests.integration.adaptorhost import why_no_adaptor_host

ROOT = Path(__file__).resolve().parents[2]
#: The exit status of a run interrupted by SIGINT (README, "Verdicts and exit status").
INTERRUPTED = 128 + int(signal.SIGINT)


pytestmark = pytest.mark.skipif(
    why_no_adaptor_host() is not None, reason=f"no adaptor target here: {why_no_adaptor_host()}"
)


def _adaptor_folders(pid: int) -> list[Path]:
    return sorted(Path(launcher._short_base()).glob(f"{launcher.RUNS_PREFIX}{pid}-*"))


def _adaptors(pid: int) -> list[tuple[int, bool]]:
    """(number, answers on its socket) of each adaptor folder of the run; number 1 is the start-up probe."""
    found = []
    for folder in _adaptor_folders(pid):
        with contextlib.suppress(FileNotFoundError):  # the run removed it meanwhile
            for directory in folder.iterdir():
                if directory.name.isdigit():
                    found.append((int(directory.name), (directory / "hypervisor.sock").exists()))
    return found


def _scenario_running(pid: int) -> bool:
    """The scenario's first adaptor answers: send 1 s later, while its pod VM is being made."""
    return any(number >= 2 and up for number, up in _adaptors(pid))


def _adaptor_restarting(pid: int) -> bool:
    """The scenario's restarted adaptor (VM-013 restarts them) is starting and does not answer yet."""
    return any(number >= 3 and not up for number, up in _adaptors(pid))


MOMENTS = {"in a scenario": (_scenario_running, 1.0), "while an adaptor starts": (_adaptor_restarting, 0.0)}


def _processes_of(pid: int) -> list[str]:
    """Processes whose command line names the run's namespaces or folders (adaptors, libvirtd,
    virtlogd, dnsmasq, QEMU all do)."""
    marks = (f"{netns.PREFIX}{pid}-".encode(), f"{launcher.RUNS_PREFIX}{pid}-".encode())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        if any(mark in command for mark in marks):
            words = command.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{entry.name}: {words[:160]}")
    return found


@pytest.mark.parametrize("moment", sorted(MOMENTS))
def test_sigint_leaves_nothing_of_the_run(tmp_path: Path, moment: str) -> None:
    ready, wait = MOMENTS[moment]
    output = (tmp_path / "run.out").open("w")
    # VM-013: two pods and an adaptor restart, so processes, namespaces and pod VMs to remove
    command = ["run", "--target", "adaptor", "--report-dir", str(tmp_path / "r"), "-k", "VM-013"]
    run = subprocess.Popen(
        [sys.executable, "-m", "sim", *command],
        cwd=ROOT,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 300
        while not ready(run.pid):
            assert run.poll() is None, f"the run ended first: {(tmp_path / 'run.out').read_text()}"
            assert time.monotonic() < deadline, f"not {moment} within 300 s"
            time.sleep(0.01)
        time.sleep(wait)
        os.killpg(run.pid, signal.SIGINT)
        status = run.wait(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        output.close()
    said = (tmp_path / "run.out").read_text()
    assert status == INTERRUPTED, f"exit status {status}, not {INTERRUPTED}:\n{said}"
    assert "interrupted" in said, said
    mine = f"{netns.PREFIX}{run.pid}-"
    assert [name for name in netns.names() if name.startswith(mine)] == []
    assert _adaptor_folders(run.pid) == []
    assert sorted(isolated.default_base().glob(f"{mine}*")) == []
    assert _processes_of(run.pid) == []
