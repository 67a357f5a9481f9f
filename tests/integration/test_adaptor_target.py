"""The adaptor target end to end: the reference adaptor as a process in the run's own isolated
LPAR, driven over its ttrpc API; what a bad adaptor gets; what the run leaves behind.

Needs root, libvirt's daemons and the s390x pod VM image (what `.ci/setup-lpar-host`
prepares and CI runs as); skipped with the reason elsewhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("libvirt")

from sim.harness.targets.adaptor import AdaptorTarget
from sim.harness.targets.base import PodVMs, need
from sim.lpar import netns
from tests.integration.adaptorhost import why_no_adaptor_host

pytestmark = pytest.mark.skipif(
    why_no_adaptor_host() is not None, reason=f"no adaptor target here: {why_no_adaptor_host()}"
)


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def run_binary(binary: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A run of the adaptor target on ``binary``, its reports beside it."""
    report = str(binary.parent / "r")
    return run("run", "--target", "adaptor", "--adaptor-binary", str(binary), "--report-dir", report, env=env)


def _owned_namespaces() -> list[str]:
    """The isolated LPARs' namespaces whose owner process is gone (what a run would have left).
    Other live runs' namespaces (another job on the machine) are not this test's business."""
    left = []
    for name in netns.names():
        owner = name.removeprefix("ppc-").split("-", 1)[0]
        if name.startswith("ppc-") and owner.isdigit() and not Path(f"/proc/{owner}").exists():
            left.append(name)
    return left


@pytest.fixture
def script(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "adaptor"
    yield path


def _executable(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    path.chmod(0o755)
    return path


def test_a_binary_that_exits_at_start_is_refused_before_any_scenario(script: Path) -> None:
    before = _owned_namespaces()
    binary = _executable(script, "#!/bin/sh\necho 'no adaptor here' >&2\nexit 3\n")
    done = run_binary(binary)
    assert done.returncode == 2, done.stderr
    assert "exited at start with status 3" in done.stderr and "no adaptor here" in done.stderr
    assert "Traceback" not in done.stderr
    assert set(_owned_namespaces()) <= set(before), "the run's isolated LPAR was left behind"


def test_a_binary_that_never_answers_is_refused_naming_the_wait(script: Path) -> None:
    binary = _executable(script, "#!/bin/sh\nexec sleep 600\n")
    done = run_binary(binary, env={"PEERPODS_ADAPTOR_START_TIMEOUT": "2"})
    assert done.returncode == 2, done.stderr
    assert "did not answer Version" in done.stderr and "within 2 s" in done.stderr


def test_an_adaptor_answering_another_version_is_refused(script: Path) -> None:
    """A ttrpc server of the right service that answers Version with something else."""
    server = f"""\
        #!{sys.executable}
        import argparse, pathlib, signal, threading
        from sim.peerpods.hypervisor import hypervisor_pb2 as pb
        from sim.peerpods.hypervisor.client import SERVICE
        from sim.peerpods.hypervisor.server import Method, TtrpcServer
        parser = argparse.ArgumentParser()
        parser.add_argument("provider")
        parser.add_argument("-socket"); parser.add_argument("-pods-dir")
        args, _ = parser.parse_known_args()
        server = TtrpcServer(pathlib.Path(args.socket), {{SERVICE: {{
            "Version": Method(pb.VersionRequest, lambda r: pb.VersionResponse(version="9.9.9"))}}}})
        server.start()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
        stop.wait()
        server.shutdown()
        """
    binary = _executable(script, server)
    done = run_binary(binary)
    assert done.returncode == 2, done.stderr
    assert "'9.9.9'" in done.stderr and "'0.0.0'" in done.stderr


def test_native_without_kvm_or_a_bad_lpar_host_is_refused(tmp_path: Path) -> None:
    done = run("run", "--target", "adaptor", "--lpar-host", "zvm", "--report-dir", str(tmp_path / "r"))
    assert done.returncode == 2 and "--lpar-host" in done.stderr


def test_the_reference_adaptor_makes_canonical_s390x_domains_through_the_ibmz_layer() -> None:
    """CAA's s390x domain (kvm, host-model) is what the reference writes on the IBM Z host;
    libvirt stores it as the layer translates it, and the guest really reports."""
    target = AdaptorTarget(None, binary=None)
    try:
        env = target.open_environment()
        try:
            env.create_namespace("confidential")
            env.add_node("worker-0")
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web", "namespace": "confidential"},
                "spec": {
                    "runtimeClassName": "kata-remote",
                    "containers": [{"name": "app", "image": "nginx"}],
                },
            }
            outcome = env.create_pod(pod)
            assert outcome.phase == "Running", outcome.reason
            assert outcome.vm is not None and outcome.vm.startswith("podvm-web-")
            stored = ET.fromstring(target.connection.lookupByName(outcome.vm).XMLDesc(0))
            assert stored.get("type") == "qemu"  # written as kvm, run under TCG
            cpu = stored.find("cpu")
            assert cpu is not None and cpu.get("mode") == "custom" and cpu.findtext("model") == "qemu"
            assert stored.find("os/type") is not None and stored.find("os/type").get("arch") == "s390x"  # type: ignore[union-attr]
            report = need(env, PodVMs).guest_report("confidential", "web")
            assert report.arch == "s390x"
            env.delete_pod("confidential", "web")
            assert need(env, PodVMs).leftovers() == []
        finally:
            env.close()
    finally:
        target.close()
    assert target.isolated is not None and target.isolated.leftovers() == []


def test_a_selection_on_the_reference_adaptor_passes_and_leaves_nothing(tmp_path: Path) -> None:
    before = _owned_namespaces()
    done = run(
        "run",
        "--target",
        "adaptor",
        "--report-dir",
        str(tmp_path / "r"),
        "-k",
        "shaped_as_the_libvirt_provider or without_annotations or deleting_the_pod",
    )
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["counts"]["scenarios"]["passed"] >= 3, summary["counts"]
    assert summary["counts"]["scenarios"]["failed"] == 0
    assert set(_owned_namespaces()) <= set(before)
