"""The reference cloud-api-adaptor behind the remote hypervisor API (sim/peerpods/adaptorservice.py),
called as the Kata shim calls it: through HypervisorClient and TtrpcServer on a real unix socket,
over the in-memory provider; and ``peerpods-conformance adaptor serve`` as a real process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from sim.peerpods import cloudconfig, initdata
from sim.peerpods.adaptor import CloudApiAdaptor
from sim.peerpods.adaptorservice import HypervisorService
from sim.peerpods.hypervisor.client import AdaptorUnreachable, HypervisorClient, RemoteError
from sim.peerpods.hypervisor.server import TtrpcServer
from sim.peerpods.providers.memory import MemoryProvider

ANN = "io.katacontainers.config.hypervisor."
SANDBOX_NAME = "io.kubernetes.cri.sandbox-name"
SANDBOX_NAMESPACE = "io.kubernetes.cri.sandbox-namespace"
SANDBOX_ID = "3f2a9c41" + "0123456789abcdef" * 3 + "d00dfeed"

TOML = """algorithm = "sha384"
version = "0.1.0"

[data]
"aa.toml" = '''
[token_configs.kbs]
url = "http://trustee.example:8080"
'''
"""


def shim_annotations(pod: str = "web", namespace: str = "shop", **overrides: str) -> dict[str, str]:
    """The nine annotations the Kata shim always sends (remote.go), empty ones included."""
    annotations = {
        SANDBOX_NAME: pod,
        SANDBOX_NAMESPACE: namespace,
        ANN + "machine_type": "",
        ANN + "image": "",
        ANN + "default_vcpus": "0",
        ANN + "default_memory": "0",
        ANN + "cc_init_data": "",
        ANN + "default_gpus": "0",
        ANN + "default_gpu_model": "",
    }
    annotations.update({ANN + key: value for key, value in overrides.items()})
    return annotations


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory (tmp_path may be longer than a unix socket path allows)."""
    path = Path(tempfile.mkdtemp(prefix="caa-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class Stack:
    provider: MemoryProvider
    pods_dir: Path
    client: HypervisorClient


Start = Callable[..., Stack]


@pytest.fixture
def stack(sockdir: Path, tmp_path: Path) -> Iterator[Start]:
    """start(config=..., wait_ready=...): an adaptor served on a socket, and a client on it."""
    cleanups: list[Callable[[], None]] = []

    def start(
        config: Mapping[str, str] | None = None, wait_ready: Callable[[str], object] | None = None
    ) -> Stack:
        provider = MemoryProvider(tmp_path / "podvms")
        cleanups.append(provider.close)
        adaptor = CloudApiAdaptor("worker-0", provider)
        adaptor.start(dict(config or {}))
        pods_dir = tmp_path / "pods"
        service = HypervisorService(adaptor, pods_dir, wait_ready)
        server = TtrpcServer(sockdir / f"h{len(cleanups)}.sock", service.methods())
        server.start()
        cleanups.append(server.shutdown)
        client = HypervisorClient(str(server.path))
        cleanups.append(client.close)
        return Stack(provider, pods_dir, client)

    yield start
    for cleanup in reversed(cleanups):
        cleanup()


# --- CreateVM --------------------------------------------------------------------------------------


def test_create_vm_answers_the_agent_socket_and_writes_apf_json(stack: Start) -> None:
    s = stack()
    path = s.client.create_vm(SANDBOX_ID, shim_annotations("web", "shop"), "/run/netns/cni-1")
    sandbox_dir = s.pods_dir / SANDBOX_ID
    assert path == str(sandbox_dir / "agent.ttrpc")
    apf = json.loads((sandbox_dir / "apf.json").read_text())
    assert apf["pod-name"] == "web"
    assert apf["pod-namespace"] == "shop"
    assert s.provider.instances() == []  # no pod VM before StartVM


def test_create_vm_without_the_sandbox_name_is_refused(stack: Start) -> None:
    s = stack()
    annotations = shim_annotations()
    del annotations[SANDBOX_NAME]
    with pytest.raises(RemoteError) as caught:
        s.client.create_vm(SANDBOX_ID, annotations, "/run/netns/x")
    assert SANDBOX_NAME in caught.value.message
    assert "missing" in caught.value.message
    assert not (s.pods_dir / SANDBOX_ID).exists()
    # the refusal did not record the sandbox: a correct CreateVM for the same id goes through
    s.client.create_vm(SANDBOX_ID, shim_annotations(), "/run/netns/x")


def test_create_vm_without_the_sandbox_namespace_is_refused(stack: Start) -> None:
    s = stack()
    with pytest.raises(RemoteError) as caught:
        s.client.create_vm(SANDBOX_ID, shim_annotations(namespace=""), "/run/netns/x")
    assert SANDBOX_NAMESPACE in caught.value.message
    assert "missing" in caught.value.message
    assert not (s.pods_dir / SANDBOX_ID).exists()


def test_create_vm_with_an_empty_sandbox_name_is_refused(stack: Start) -> None:
    s = stack()
    with pytest.raises(RemoteError) as caught:
        s.client.create_vm(SANDBOX_ID, shim_annotations(pod=""), "/run/netns/x")
    assert SANDBOX_NAME in caught.value.message


def test_create_vm_with_an_empty_id_is_refused(stack: Start) -> None:
    s = stack()
    with pytest.raises(RemoteError) as caught:
        s.client.create_vm("", shim_annotations(), "/run/netns/x")
    assert "sandbox id" in caught.value.message
    assert not s.pods_dir.exists() or list(s.pods_dir.iterdir()) == []


@pytest.mark.parametrize("bad_id", ["../x", "a/b", ".."])
def test_create_vm_with_an_id_that_is_not_one_path_component_is_refused(
    stack: Start, bad_id: str, tmp_path: Path
) -> None:
    s = stack()
    with pytest.raises(RemoteError) as caught:
        s.client.create_vm(bad_id, shim_annotations(), "/run/netns/x")
    assert bad_id in caught.value.message
    assert "sandbox id" in caught.value.message
    assert not (tmp_path / "x").exists()
    assert not (s.pods_dir / "a").exists()
    assert not (tmp_path / "apf.json").exists()


def test_duplicate_create_vm_is_refused_and_keeps_the_first(stack: Start) -> None:
    s = stack()
    s.client.create_vm(SANDBOX_ID, shim_annotations("first", "ns1"), "/run/netns/a")
    with pytest.raises(RemoteError) as caught:
        s.client.create_vm(SANDBOX_ID, shim_annotations("second", "ns2"), "/run/netns/b")
    assert f"sandbox {SANDBOX_ID} already exists" in caught.value.message
    # upstream checks for the duplicate only after rewriting apf.json (FACTS 0.10)
    assert json.loads((s.pods_dir / SANDBOX_ID / "apf.json").read_text())["pod-name"] == "second"
    s.client.start_vm(SANDBOX_ID, timeout=10)
    assert s.provider.instances() == [f"podvm-first-{SANDBOX_ID[:8]}"]


# --- StartVM ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "vcpus", "memory", "expected"),
    [
        ({}, "3", "4096", (3, 4096)),
        ({"LIBVIRT_CPU": "5", "LIBVIRT_MEMORY": "6144"}, "3", "4096", (3, 4096)),
        ({"LIBVIRT_CPU": "5", "LIBVIRT_MEMORY": "6144"}, "0", "0", (5, 6144)),
        ({"LIBVIRT_CPU": "5", "LIBVIRT_MEMORY": "6144"}, "0", "1024", (5, 1024)),
        ({}, "0", "0", (2, 8192)),
    ],
    ids=["annotations", "annotations-win", "config-when-0", "mixed", "caa-defaults"],
)
def test_start_vm_sizes_the_pod_vm(
    stack: Start, config: dict[str, str], vcpus: str, memory: str, expected: tuple[int, int]
) -> None:
    s = stack(config)
    s.client.create_vm(SANDBOX_ID, shim_annotations(default_vcpus=vcpus, default_memory=memory), "/n")
    s.client.start_vm(SANDBOX_ID, timeout=10)
    [vm] = s.provider.instances()
    facts = s.provider.describe(vm)
    assert (facts["vcpus"], facts["memory_mib"]) == expected


@pytest.mark.parametrize(
    ("pod", "expected"),
    [("web", "podvm-web-3f2a9c41"), ("Web_App.1", "podvm-web-app-1-3f2a9c41")],
)
def test_pod_vm_name_is_podvm_pod_and_first_8_of_the_sandbox_id(
    stack: Start, pod: str, expected: str
) -> None:
    s = stack()
    s.client.create_vm(SANDBOX_ID, shim_annotations(pod), "/n")
    s.client.start_vm(SANDBOX_ID, timeout=10)
    assert s.provider.instances() == [expected]
    assert s.provider.describe(expected)["sandbox_id"] == SANDBOX_ID


def initdata_in_user_data(provider: MemoryProvider, vm: str) -> list[str]:
    files = cloudconfig.parse_user_data(provider.describe(vm)["user_data"])
    return [f.content for f in files if f.path == cloudconfig.INITDATA_PATH]


def test_cc_init_data_reaches_the_user_data_gzipped_and_base64_encoded(stack: Start) -> None:
    s = stack()
    s.client.create_vm(SANDBOX_ID, shim_annotations(cc_init_data=TOML), "/n")
    s.client.start_vm(SANDBOX_ID, timeout=10)
    [vm] = s.provider.instances()
    [encoded] = initdata_in_user_data(s.provider, vm)
    assert encoded != TOML
    assert initdata.decode(encoded) == TOML.encode()


def test_no_cc_init_data_and_no_global_initdata_means_no_initdata_file(stack: Start) -> None:
    s = stack()
    s.client.create_vm(SANDBOX_ID, shim_annotations(), "/n")
    s.client.start_vm(SANDBOX_ID, timeout=10)
    [vm] = s.provider.instances()
    assert initdata_in_user_data(s.provider, vm) == []


def test_start_vm_for_an_unknown_id_is_not_found(stack: Start) -> None:
    s = stack()
    with pytest.raises(RemoteError) as caught:
        s.client.start_vm("never-created", timeout=10)
    assert "sandbox never-created does not exist" in caught.value.message
    assert s.provider.instances() == []


def test_stop_vm_deletes_the_pod_vm(stack: Start) -> None:
    s = stack()
    s.client.create_vm(SANDBOX_ID, shim_annotations(), "/n")
    s.client.start_vm(SANDBOX_ID, timeout=10)
    assert len(s.provider.instances()) == 1
    s.client.stop_vm(SANDBOX_ID)
    assert s.provider.instances() == []
    # upstream leaves <pods-dir>/<id>/apf.json behind (FACTS 3.4)
    assert (s.pods_dir / SANDBOX_ID / "apf.json").is_file()
    with pytest.raises(RemoteError) as caught:  # the sandbox is forgotten
        s.client.start_vm(SANDBOX_ID, timeout=10)
    assert f"sandbox {SANDBOX_ID} does not exist" in caught.value.message


def test_stop_vm_for_an_unknown_id_names_it(stack: Start) -> None:
    s = stack()
    with pytest.raises(RemoteError) as caught:
        s.client.stop_vm("never-created")
    assert "sandbox never-created does not exist" in caught.value.message


def test_a_pod_vm_that_never_becomes_ready_fails_start_vm_and_is_deleted(stack: Start) -> None:
    asked: list[str] = []

    def never_ready(vm: str) -> None:
        asked.append(vm)
        raise TimeoutError("no lease for the guest within 600 s")

    s = stack(wait_ready=never_ready)
    s.client.create_vm(SANDBOX_ID, shim_annotations(), "/n")
    with pytest.raises(RemoteError) as caught:
        s.client.start_vm(SANDBOX_ID, timeout=10)
    assert "no lease for the guest within 600 s" in caught.value.message
    assert asked == [f"podvm-web-{SANDBOX_ID[:8]}"]
    assert s.provider.instances() == []
    s.client.stop_vm(SANDBOX_ID)  # what the shim does next: it must succeed


def test_wait_ready_that_returns_lets_start_vm_succeed(stack: Start) -> None:
    asked: list[str] = []
    s = stack(wait_ready=asked.append)
    s.client.create_vm(SANDBOX_ID, shim_annotations(), "/n")
    s.client.start_vm(SANDBOX_ID, timeout=10)
    assert asked == s.provider.instances() == [f"podvm-web-{SANDBOX_ID[:8]}"]


def test_version_answers_0_0_0_whatever_is_asked(stack: Start) -> None:
    s = stack()
    assert s.client.version("9.9.9") == "0.0.0"
    assert s.client.version("") == "0.0.0"


# --- `peerpods-conformance adaptor serve` as a process ------------------------------------------------


def serve_env(**extra: str) -> dict[str, str]:
    """This environment without anything the adaptor would read as its configuration."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LIBVIRT_", "PEERPODS_", "INITDATA", "DISABLECVM", "NODE_NAME"))
    }
    env.update(extra)
    return env


def exited(process: subprocess.Popen[str]) -> str:
    """What a serve process printed on stderr once it exited by itself (killed if it does not)."""
    try:
        return process.communicate(timeout=60)[1]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def run_serve(socket_path: str, pods_dir: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sim",
            "adaptor",
            "serve",
            "--provider",
            "memory",
            "--socket",
            socket_path,
            "--pods-dir",
            str(pods_dir),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_socket(process: subprocess.Popen[str], path: Path, deadline: float = 30.0) -> HypervisorClient:
    until = time.monotonic() + deadline
    while True:
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"adaptor serve exited {process.returncode} before serving: {err}")
        if path.is_socket():
            try:
                return HypervisorClient(str(path))
            except AdaptorUnreachable:
                pass
        if time.monotonic() > until:
            pytest.fail(f"adaptor serve did not listen on {path} within {deadline} s")
        time.sleep(0.05)


def test_adaptor_serve_answers_version_and_exits_0_on_sigterm(sockdir: Path) -> None:
    path = sockdir / "hypervisor.sock"
    process = run_serve(str(path), sockdir / "pods", serve_env())
    try:
        with wait_for_socket(process, path) as client:
            assert client.version("1.0") == "0.0.0"
            client.create_vm(SANDBOX_ID, shim_annotations(), "/run/netns/x")
            client.start_vm(SANDBOX_ID, timeout=10)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert not path.exists()


def test_adaptor_serve_with_a_broken_initdata_exits_1(sockdir: Path) -> None:
    path = sockdir / "hypervisor.sock"
    process = run_serve(str(path), sockdir / "pods", serve_env(INITDATA="this is not base64!"))
    err = exited(process)
    assert process.returncode == 1, err
    assert "failed to parse global initdata" in err
    assert not path.exists()


def test_adaptor_serve_refuses_a_socket_path_over_107_bytes(sockdir: Path) -> None:
    long_path = str(sockdir / ("s" * 120))
    process = run_serve(long_path, sockdir / "pods", serve_env())
    err = exited(process)
    assert process.returncode == 2, err
    assert "--socket" in err
    assert "Traceback" not in err
    assert not Path(long_path).exists()


def test_adaptor_serve_refuses_an_unknown_boot(sockdir: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "sim",
        "adaptor",
        "serve",
        "--boot",
        "pxe",
        "--socket",
        str(sockdir / "s"),
    ]
    done = subprocess.run(command, env=serve_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "--boot" in done.stderr and "'pxe'" in done.stderr
    assert not (sockdir / "s").exists()


def test_the_reference_adaptors_command_says_how_it_boots(tmp_path: Path) -> None:
    from sim.harness.targets.adaptorprocess.launcher import AdaptorLauncher

    socket_path, pods = tmp_path / "h.sock", tmp_path / "pods"
    volume = AdaptorLauncher(None, run_dir=tmp_path / "a")
    kernel = AdaptorLauncher(None, run_dir=tmp_path / "b", boot="kernel")
    assert "--boot" not in volume.argv({}, socket_path, pods)  # CAA's way is the default
    assert kernel.argv({}, socket_path, pods)[-2:] == ["--boot", "kernel"]
