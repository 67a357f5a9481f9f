"""The local control plane's lifecycle: it starts, survives a port clash, leaves nothing behind,
and a killed run's leftovers are cleaned by the next one. Bad cluster input exits 2.

The control plane tests need the binaries `peerpods-conformance cluster prepare` builds
(CI builds them in .ci/setup-lpar-host); without them they are skipped, saying so.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

from sim import ports
from sim.harness.targets.cluster import controlplane
from sim.harness.targets.cluster.build import ControlPlaneBinaries, find_binaries
from sim.harness.targets.cluster.controlplane import ControlPlane, clean_stale_runs

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, CoreV1Api, V1ObjectMeta, V1Taint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def binaries() -> ControlPlaneBinaries:
    found = find_binaries()
    if found is None:
        pytest.skip("control plane not built: run `peerpods-conformance cluster prepare`")
    return found


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    return tmp_path / "runs"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of ours counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _client(plane: ControlPlane) -> ApiClient:
    """A Kubernetes API client for the plane's kubeconfig."""
    from kubernetes import config

    # kubernetes.config.new_client_from_config has no annotations
    api: ApiClient = config.new_client_from_config(config_file=str(plane.kubeconfig))  # type: ignore[no-untyped-call]
    return api


def _closing(plane: ControlPlane) -> contextlib.closing[ApiClient]:
    """A client that the ``with`` block closes."""
    return contextlib.closing(_client(plane))


def _api(plane: ControlPlane) -> CoreV1Api:
    from kubernetes import client

    return client.CoreV1Api(_client(plane))


class _Stored(Protocol):
    """An object as the API server returns it (a namespace, pod, node...)."""

    @property
    def metadata(self) -> V1ObjectMeta | None: ...


def _names(objects: Iterable[_Stored]) -> list[str | None]:
    return [o.metadata.name if o.metadata is not None else None for o in objects]


def _node_resources(core: CoreV1Api, name: str) -> tuple[dict[str, str], dict[str, str], list[V1Taint]]:
    """A node's capacity, allocatable and taints as the API server stores them."""
    node = core.read_node(name)
    assert node.status is not None and node.spec is not None, node
    capacity, allocatable = node.status.capacity, node.status.allocatable
    assert capacity is not None and allocatable is not None, node.status
    return capacity, allocatable, node.spec.taints or []


def test_starts_answers_and_teardown_leaves_no_process(binaries: ControlPlaneBinaries, runs: Path) -> None:
    plane = ControlPlane(binaries, root=runs).start()
    try:
        pids = plane.pids()
        run_dir = plane.run_dir
        assert len(pids) == 3 and all(_alive(pid) for pid in pids)
        assert plane.ready_seconds is not None and plane.ready_seconds > 0
        core = _api(plane)
        names = set(_names(core.list_namespace().items))
        assert {"default", "kube-system"} <= names
    finally:
        plane.stop()
    assert not any(_alive(pid) for pid in pids)
    assert run_dir is not None and not run_dir.exists()


def test_a_port_in_use_gets_another_port(
    binaries: ControlPlaneBinaries, runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    real = ports.free_port
    handed: list[int] = []

    def first_taken(host: str = "127.0.0.1") -> int:  # the API server's first port is taken
        port = taken if len(handed) == 2 else real(host)
        handed.append(port)
        return port

    monkeypatch.setattr(controlplane, "free_port", first_taken)
    logged: list[str] = []
    try:
        with ControlPlane(binaries, root=runs, log=logged.append) as plane:
            assert plane.api_port not in (None, taken)
            assert any(f"port {taken} was taken" in line for line in logged), logged
            _api(plane).list_namespace()
    finally:
        squatter.close()


def test_a_killed_run_leaves_nothing_the_next_run_trips_on(
    binaries: ControlPlaneBinaries, runs: Path
) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from sim.harness.targets.cluster.build import find_binaries
        from sim.harness.targets.cluster.controlplane import ControlPlane
        plane = ControlPlane(find_binaries(), root=Path({str(runs)!r})).start()
        print(plane.run_dir, *plane.pids(), flush=True)
        time.sleep(600)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    run_dir, *pid_texts = child.stdout.readline().split()
    pids = [int(p) for p in pid_texts]
    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids), "the control plane outlived the run that started it"
    assert Path(run_dir).exists()  # the directory is what the killed run left
    removed = clean_stale_runs(runs)
    assert removed == [Path(run_dir)] and not Path(run_dir).exists()


def _wait_for_exec(process: subprocess.Popen[bytes], marker: str, timeout: float = 10.0) -> None:
    """Until ``marker`` is in the process's command line (it has exec'd its program)."""
    deadline = time.monotonic() + timeout
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    while marker not in cmdline.read_bytes().decode(errors="replace"):
        assert time.monotonic() < deadline, f"pid {process.pid} did not start {marker!r}"
        time.sleep(0.01)


def test_a_stale_pid_file_is_cleaned_and_only_its_own_processes_are_killed(runs: Path) -> None:
    stale = runs / "run-stale"
    stale.mkdir(parents=True)
    (stale / "owner.pid").write_text("999999999\n")  # no such process
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    own = subprocess.Popen([sys.executable, "-c", "import time, sys; time.sleep(60)", str(stale)])
    server = subprocess.Popen([sys.executable, "-c", "import time, sys; time.sleep(60)", "/tmp/x/ca.pem"])
    try:
        _wait_for_exec(own, str(stale))  # a child that has not exec'd yet still shows pytest's command line
        _wait_for_exec(server, "/tmp/x/ca.pem")
        (stale / "pids").write_text(
            f"kube-apiserver {own.pid}\netcd {bystander.pid}\nwebhook-server {server.pid} /tmp/x/ca.pem\n"
        )
        assert clean_stale_runs(runs) == [stale]
        assert own.wait(5) == -signal.SIGKILL
        assert server.wait(5) == -signal.SIGKILL  # recognised by its own marker
        assert bystander.poll() is None  # not the run's (its command line does not name the run)
        assert not stale.exists()
    finally:
        for process in (bystander, own, server):
            process.kill()
            process.wait()


def test_a_live_run_is_left_alone(runs: Path) -> None:
    live = runs / "run-live"
    live.mkdir(parents=True)
    (live / "owner.pid").write_text(f"{os.getpid()}\n")
    assert clean_stale_runs(runs) == []
    assert live.exists()


def test_a_component_that_will_not_start_is_reported_with_its_log_tail(
    binaries: ControlPlaneBinaries, runs: Path, tmp_path: Path
) -> None:
    broken_dir = tmp_path / "broken"
    (broken_dir / "bin").mkdir(parents=True)
    for name in ("etcd", "kube-apiserver", "kube-scheduler"):
        (broken_dir / "bin" / name).symlink_to(binaries.path(name))
    (broken_dir / "bin" / "kube-apiserver").unlink()
    (broken_dir / "bin" / "kube-apiserver").write_text(
        "#!/bin/sh\necho 'E0000 cannot start: broken on purpose' >&2\nexit 3\n"
    )
    (broken_dir / "bin" / "kube-apiserver").chmod(0o755)
    broken = ControlPlaneBinaries(broken_dir, binaries.kubernetes_version, binaries.etcd_version)
    plane = ControlPlane(broken, root=runs)
    with pytest.raises(controlplane.ControlPlaneError) as raised:
        plane.start()
    message = str(raised.value)
    assert "kube-apiserver exited with status 3" in message
    assert "broken on purpose" in message
    assert not plane.components and not any(runs.iterdir())  # etcd stopped, directory removed


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", "run", "--target", "cluster", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_missing_kubeconfig_exits_2_naming_it(tmp_path: Path) -> None:
    completed = _run("--kubeconfig", str(tmp_path / "nope.yaml"), "--report-dir", str(tmp_path / "r"))
    assert completed.returncode == 2, completed.stderr
    assert f"--kubeconfig {tmp_path / 'nope.yaml'}: no such file" in completed.stderr


def test_a_cluster_that_does_not_answer_exits_2_naming_it(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        textwrap.dedent(
            f"""\
            apiVersion: v1
            kind: Config
            clusters:
            - name: c
              cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}
            users: [{{name: u, user: {{token: t}}}}]
            contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
            current-context: x
            """
        )
    )
    completed = _run("--kubeconfig", str(kubeconfig), "--report-dir", str(tmp_path / "r"))
    assert completed.returncode == 2, completed.stderr
    assert f"the cluster at https://127.0.0.1:{port} does not answer" in completed.stderr
    completed = _run(
        "--kubeconfig", str(kubeconfig), "--context", "nope", "--report-dir", str(tmp_path / "r")
    )
    assert completed.returncode == 2, completed.stderr
    assert "nope" in completed.stderr


@pytest.mark.parametrize("kind", ["kind", "k3s"])
def test_kind_and_k3s_without_a_container_engine_exit_2(kind: str, tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "sim",
            "run",
            "--target",
            "cluster",
            "--cluster",
            kind,
            "--report-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"},
    )
    if "a container engine answers" in completed.stderr:
        pytest.skip("a container engine answers on this machine")
    assert completed.returncode == 2, completed.stderr
    assert f"--cluster {kind}: no container engine answers" in completed.stderr


def test_a_cluster_given_by_kubeconfig_is_used_as_deployed_and_cleaned(
    binaries: ControlPlaneBinaries, runs: Path, tmp_path: Path
) -> None:
    """A user's cluster: the webhook deployed as in the caa-chart profile; the suite creates
    and deletes its own namespaces and pods, and what would change the deployment is not applicable."""
    import base64
    import json

    import yaml
    from kubernetes import client

    from sim.server.launch import launched

    with ControlPlane(binaries, root=runs) as plane, launched() as server, _closing(plane) as api:
        core = client.CoreV1Api(api)
        client.NodeV1Api(api).create_runtime_class(
            yaml.safe_load((ROOT / "fixtures/cluster/runtimeclass-kata-remote.yaml").read_text())
        )
        mwc = yaml.safe_load((ROOT / "fixtures/admission/caa-chart-mwc.yaml").read_text())
        for webhook in mwc["webhooks"]:
            webhook["clientConfig"] = {
                "url": server.url,
                "caBundle": base64.b64encode(server.ca.read_bytes()).decode(),
            }
        client.AdmissionregistrationV1Api(api).create_mutating_webhook_configuration(mwc)
        reports = tmp_path / "reports"
        completed = _run(
            "--kubeconfig", str(plane.kubeconfig), "--report-dir", str(reports), "--tags", "WH-003 or NL-001"
        )
        # a --tags selection is never a certificate: PARTIAL (exit 3) when all it ran passed
        assert completed.returncode == 3, completed.stdout + completed.stderr
        summary = json.loads((reports / "summary.json").read_text())
        outcomes = {s["scenario"]: (s["outcome"], s.get("reason") or "") for s in summary["scenarios"]}
        assert any(o == "passed" for o, _ in outcomes.values()), outcomes
        not_applicable = [r for o, r in outcomes.values() if o == "not applicable"]
        assert not_applicable and all("needs cluster" in r for r in not_applicable), outcomes
        assert summary["target"]["kube-apiserver"] == f"kube-apiserver {binaries.kubernetes_version}"
        # what the run made is gone or going (no namespace controller runs here to finish it)
        workloads = core.read_namespace("workloads").metadata
        assert workloads is not None and workloads.labels is not None, workloads
        assert workloads.labels.get("peerpods-conformance/run")
        assert workloads.deletion_timestamp is not None
        left = core.list_pod_for_all_namespaces(label_selector="peerpods-conformance/run").items
        assert _names(left) == []


def test_a_node_agent_advertises_the_limit_as_caa_does_and_removes_it_on_stop(
    binaries: ControlPlaneBinaries, runs: Path
) -> None:
    from kubernetes import client

    from sim.harness.targets.cluster.nodeagent import NodeAgent
    from sim.peerpods.providers.memory import MemoryProvider

    vm = "kata.peerpods.io/vm"
    with ControlPlane(binaries, root=runs) as plane, _closing(plane) as api:
        core = client.CoreV1Api(api)
        namespace = "openshift-sandboxed-containers-operator"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        cm = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="peer-pods-cm"), data={"PEERPODS_LIMIT_PER_NODE": "4"}
        )
        core.create_namespaced_config_map(namespace, cm)
        provider = MemoryProvider()
        agent = NodeAgent("worker-0", api, provider)
        agent.register()
        capacity, allocatable, taints = _node_resources(core, "worker-0")
        assert capacity[vm] == "4" and allocatable[vm] == "4"
        assert not [t for t in taints if t.key == "node.kubernetes.io/not-ready"]
        agent.restart_adaptor({"PEERPODS_LIMIT_PER_NODE": "-1"})  # negative: nothing advertised
        capacity, allocatable, _ = _node_resources(core, "worker-0")
        assert vm not in capacity and vm not in allocatable
        agent.restart_adaptor({})  # unset: CAA's default of 10
        assert _node_resources(core, "worker-0")[0][vm] == "10"
        agent.stop()
        assert _names(core.list_node().items) == []
        provider.close()


def test_a_killed_cluster_run_leaves_no_webhook_server_behind(binaries: ControlPlaneBinaries) -> None:
    script = textwrap.dedent(
        """
        import time
        from sim.harness.targets.base import TargetOptions
        from sim.harness.targets.cluster import ClusterTarget
        target = ClusterTarget.from_options(TargetOptions())
        env = target.open_environment()
        env.create_namespace("w")
        pod = {"metadata": {"name": "p", "namespace": "w"},
               "spec": {"runtimeClassName": "kata-remote", "containers": [{"name": "a", "image": "a"}]}}
        assert env.create_pod(pod).admitted
        server = next(iter(target.webhooks._servers.values()))
        print(target.plane.run_dir, server.process.pid, *target.plane.pids(), flush=True)
        time.sleep(600)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    while line and not line.startswith("/"):  # progress lines first ("cluster: ... reused")
        line = child.stdout.readline()
    run_dir, webhook_pid, *plane_pids = line.split()
    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 10
    while any(_alive(int(pid)) for pid in plane_pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(int(pid)) for pid in plane_pids)
    assert _alive(int(webhook_pid))  # an orphan, until the next run cleans up
    server_processes = [int(webhook_pid), *controlplane._descendants(int(webhook_pid))]
    assert Path(run_dir) in clean_stale_runs()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in server_processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in server_processes), "the server or one of its workers survived"
    assert not Path(run_dir).exists()
