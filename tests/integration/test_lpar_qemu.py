"""Real s390x pod VMs under qemu:///system: the guest's own report, and the faults.

Skipped (with the reason) where libvirtd, qemu-system-s390x or the prepared image is
missing; `.ci/setup-lpar-host` provides all three.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("libvirt")

from sim.errors import TargetError
from sim.harness.targets.lpar import LparTarget
from sim.lpar import host
from sim.lpar.assets import KERNELS, AssetsMissing, find_assets
from sim.peerpods.cloudconfig import build_user_data
from sim.peerpods.initdata import encode
from sim.peerpods.podvm import process_user_data
from sim.peerpods.providers import InstanceSpec
from sim.peerpods.providers.libvirt import LibvirtProvider

ROOT = Path(__file__).resolve().parents[2]
TOML = (
    b'algorithm = "sha384"\nversion = "0.1.0"\n\n[data]\n'
    b'"aa.toml" = "x"\n"policy.rego" = "p"\n"../../etc/x" = "e"\n'
)


def _why_not() -> str | None:
    if os.geteuid() != 0 and not host.SOCKET.exists():
        return "libvirtd is not running and this is not root"
    try:
        find_assets()
    except AssetsMissing as exc:
        return str(exc)
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=f"no emulated LPAR here: {_why_not()}")


@pytest.fixture(scope="module")
def target() -> Iterator[LparTarget]:
    built = LparTarget(host.SYSTEM_URI)
    yield built
    built.close()


@pytest.fixture
def provider(target: LparTarget) -> Iterator[LibvirtProvider]:
    made = target.provider(report_timeout=60, ownership=target.ownership)
    yield made
    for name in [entry.split(" ", 1)[1] for entry in made.leftovers() if entry.startswith("domain ")]:
        made.delete_instance(name)
    assert made.leftovers() == []


def spec(pod: str, user_data: str, vcpus: int = 2, memory_mib: int = 2048) -> InstanceSpec:
    return InstanceSpec(pod, "default", os.urandom(16).hex(), vcpus, memory_mib, user_data)


def test_the_guest_reports_what_the_reference_computes(provider: LibvirtProvider, tmp_path: Path) -> None:
    user_data = build_user_data(apf_json="{}", initdata=encode(TOML))
    name = provider.create_instance(spec("real", user_data))
    report = provider.guest_report(name)
    expected = process_user_data(user_data, tmp_path, machine=report.machine)
    assert report.to_json() == expected.to_json()
    assert (report.arch, report.machine, report.algorithm) == ("s390x", "8561", "sha384")
    provider.delete_instance(name)
    assert provider.leftovers() == []


@pytest.mark.parametrize("kernel", KERNELS)
def test_each_kernel_reports_what_the_reference_computes(kernel: str, tmp_path: Path) -> None:
    """The minimal kernel and Debian's: same machine, architecture, digest, files, refusals."""
    try:
        find_assets(kernel=kernel)
    except AssetsMissing as exc:
        pytest.skip(f"no image with the {kernel} kernel: {exc}")
    target = LparTarget(host.SYSTEM_URI, kernel=kernel)
    try:
        assert target.assets is not None and target.assets.flavour == kernel
        provider = target.provider(report_timeout=60, ownership=target.ownership)
        user_data = build_user_data(apf_json="{}", initdata=encode(TOML))
        name = provider.create_instance(spec(f"kernel-{kernel}", user_data))
        report = provider.guest_report(name)
        provider.delete_instance(name)
        expected = process_user_data(user_data, tmp_path, machine="8561")
        assert report.to_json() == expected.to_json()
        assert report.ignored == ["../../etc/x"] and "/run/peerpod/aa.toml" in report.written
    finally:
        target.close()


def test_a_silent_guest_times_out_and_is_stopped(provider: LibvirtProvider) -> None:
    provider.cmdline_extra = "rdinit=/bin/sh"
    provider.report_timeout = 8
    name = provider.create_instance(spec("silent", ""))
    with pytest.raises(TargetError, match="did not report within 8 s"):
        provider.wait_ready(name)
    assert provider.describe(name)["active"] is False
    provider.delete_instance(name)


def test_a_guest_that_dies_fails_at_once(provider: LibvirtProvider) -> None:
    provider.cmdline_extra = "rdinit=/no/such/init"
    name = provider.create_instance(spec("dies", ""))
    with pytest.raises(TargetError, match="stopped without a report"):
        provider.wait_ready(name)


def test_failing_half_way_on_qemu_leaves_nothing(provider: LibvirtProvider) -> None:
    def fail(step: str) -> None:
        if step == "define":
            raise provider.libvirt.libvirtError("injected")

    provider.fault = fail
    with pytest.raises(TargetError, match="injected"):
        provider.create_instance(spec("doomed", ""))
    assert provider.leftovers() == []


def test_independent_pod_vms_boot_in_parallel(provider: LibvirtProvider) -> None:
    names: list[str] = []
    lock = threading.Lock()

    def create(index: int) -> None:
        user_data = build_user_data(
            apf_json="{}", initdata=encode(TOML.replace(b'"x"', f'"{index}"'.encode()))
        )
        made = provider.create_instance(spec(f"par{index}", user_data, vcpus=1))
        with lock:
            names.append(made)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reports = [provider.guest_report(name) for name in names]
    assert all(report.error is None and report.arch == "s390x" for report in reports)
    assert len({report.digest for report in reports}) == 2


def test_the_lpar_names_the_emulator_pod_vms_run_in_as_its_hypervisor(target: LparTarget) -> None:
    """The hypervisor's version is the s390x emulator's, not libvirt's answer for the host-arch
    QEMU (virConnectGetVersion), which costs 0.6 s a call where /dev/kvm is PVM."""
    emulator = target.provider().guest_caps()[2]
    assert emulator is not None
    said = subprocess.run([emulator, "--version"], capture_output=True, text=True, check=True).stdout
    facts = target.identity()
    assert facts["emulator"] == said.splitlines()[0]
    assert facts["hypervisor"] == f"QEMU {said.split('version ', 1)[1].split()[0]}"


def test_missing_assets_say_lpar_prepare(tmp_path: Path) -> None:
    with pytest.raises(AssetsMissing, match="lpar prepare"):
        LparTarget(host.SYSTEM_URI, cache=tmp_path)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", "lpar", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("uri", [host.TEST_URI, host.SYSTEM_URI])
def test_lpar_try_prints_the_pod_vms_report_and_cleans_up(tmp_path: Path, uri: str) -> None:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "try-me",
            "namespace": "demo",
            "annotations": {"io.katacontainers.config.hypervisor.cc_init_data": encode(TOML)},
        },
        "spec": {"runtimeClassName": "kata-remote", "containers": [{"name": "app", "image": "busybox"}]},
    }
    (tmp_path / "pod.yaml").write_text(json.dumps(pod))
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "peer-pods-cm"},
        "data": {"LIBVIRT_CPU": "1"},
    }
    (tmp_path / "cm.yaml").write_text(json.dumps(cm))
    done = _cli(
        "try", str(tmp_path / "pod.yaml"), "--peer-pods-cm", str(tmp_path / "cm.yaml"), "--libvirt-uri", uri
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["algorithm"] == "sha384" and report["ignored"] == ["../../etc/x"]
    assert ("guest's own report" in done.stderr) == (uri == host.SYSTEM_URI)
    if uri == host.SYSTEM_URI:
        assert report["machine"] == "8561"
        everything = LibvirtProvider(host.connect(uri), assets=find_assets()).leftovers()  # every run's
        assert [entry for entry in everything if "podvm-try-me-" in entry] == []


def test_lpar_try_names_a_bad_pod_file(tmp_path: Path) -> None:
    (tmp_path / "pod.yaml").write_text("kind: Service\napiVersion: v1\n")
    done = _cli("try", str(tmp_path / "pod.yaml"))
    assert done.returncode == 2
    assert "pod.yaml: expected apiVersion v1, kind Pod" in done.stderr


def test_lpar_prepare_reuses_a_current_image() -> None:
    done = _cli("prepare")
    assert done.returncode == 0, done.stderr
    assert "reused from the cache" in done.stdout
    assert find_assets().key in done.stdout
