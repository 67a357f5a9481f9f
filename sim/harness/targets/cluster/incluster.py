"""In-cluster access for adaptor processes: what the peer pods DaemonSet gives each adaptor pod.

A cloud-api-adaptor finds the API server as a pod does (client-go's ``rest.InClusterConfig``,
which CAA's ``pkg/adaptor/k8sops`` calls): ``KUBERNETES_SERVICE_HOST`` and
``KUBERNETES_SERVICE_PORT``, and its service account's ``token`` and ``ca.crt`` under
``/var/run/secrets/kubernetes.io/serviceaccount/``. It learns its node from ``NODE_NAME``.
:class:`InClusterAccess` gives an adaptor process of the run all of that:

* **the service account** ``cloud-api-adaptor`` with the chart's cluster-wide grants
  (``fixtures/cluster/adaptor-rbac.yaml``), and a token for it from the TokenRequest API;
* **the files**, bind-mounted at the fixed path in a mount namespace of the adaptor's own
  (``unshare --mount --propagation slave``: the pods' network namespaces, mounted later under
  ``/run/netns``, still reach it; its own mount does not leave it), so nothing is written
  where the host's processes look;
* **a worker node's network.** Each node's adaptor runs in a network namespace of its own, a
  host on the pod VMs' network of the isolated LPAR (:meth:`~sim.lpar.isolated.IsolatedLpar.node_netns`),
  as adaptors on separate worker machines do: CAA names its VXLAN tunnels per namespace, so
  two nodes' adaptors in one namespace would collide. The namespace lives as long as the node.
* **the route to the API server.** The control plane listens on the host's loopback. Two
  ``socat`` processes join them through a unix socket in the run's folder: one in each node's
  namespace listens on its loopback (``127.0.0.1:6443``, an address the API server's
  certificate names), the other connects to the API server. Traffic stays on loopback on both
  sides.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import kubernetes.utils as _kube_utils
from plumbum import local

from sim.errors import ConformanceInputError, TargetError
from sim.lpar.isolated import IsolatedLpar
from sim.lpar.netns import PodNetns
from sim.paths import FIXTURES_DIR
from sim.peerpods.nodecapacity import NODE_NAME_KEY
from sim.processes import Process, die_with_parent, terminate
from sim.yamlload import load_all

#: The Kubernetes client's helpers, untyped here.
kube_utils: Any = _kube_utils

__all__ = ["SERVICE_ACCOUNT_DIR", "InClusterAccess", "require_tools"]

RBAC = FIXTURES_DIR / "cluster" / "adaptor-rbac.yaml"
SERVICE_ACCOUNT = "cloud-api-adaptor"
#: Where a pod finds its service account (client-go's in-cluster token and CA files).
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: The API server's address as the adaptors see it, inside the LPAR's network namespace.
INNER_HOST, INNER_PORT = "127.0.0.1", 6443
TOKEN_SECONDS = 6 * 3600
STOP_TIMEOUT_S = 5.0
#: Bind the service account folder at the fixed path, then become the adaptor.
_MOUNT = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
_CONNECT = (
    "import socket, sys\nsocket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()\n"
)


def require_tools() -> None:
    """Exit 2 before anything starts when what joins the namespaces is missing."""
    if shutil.which("socat") is None:
        raise ConformanceInputError(
            "--target cluster --adaptor-binary: socat is missing (apt-get install socat, or run "
            ".ci/setup-lpar-host); it joins the adaptors' network namespace to the API server"
        )


class InClusterAccess:
    """The adaptor processes' way into the cluster whose API server listens on the host's
    loopback at ``server_port`` (see the module doc)."""

    def __init__(
        self, api: Any, server_port: int, namespace: str, isolated: IsolatedLpar, run_dir: Path
    ) -> None:
        require_tools()
        self.api = api
        self.namespace = namespace
        self.isolated = isolated
        self.folder = run_dir / "incluster"
        self.socket = self.folder / "apiserver.sock"
        self._made: list[Path] = []
        self._outer: Process | None = None
        self._nodes: dict[str, tuple[PodNetns, Process]] = {}
        self._logs: dict[int, Path] = {}  # each socat's messages, by its pid
        try:
            self._grant()
            self._mount_point()
            self._bridge(server_port)
        except BaseException:
            self.close()
            raise

    def environment(self, node: str) -> dict[str, str]:
        """The variables a DaemonSet pod on ``node`` has (the API service, its node's name)."""
        return {
            "KUBERNETES_SERVICE_HOST": INNER_HOST,
            "KUBERNETES_SERVICE_PORT": str(INNER_PORT),
            NODE_NAME_KEY: node,
        }

    def add_node(self, node: str) -> None:
        """The worker machine of ``node``: its namespace, with the API server on its loopback."""
        if node in self._nodes:
            return
        space = self.isolated.node_netns()
        try:
            inner = self._socat(
                f"socat-{space.name}",
                ["ip", "netns", "exec", space.name, "socat"],
                f"TCP-LISTEN:{INNER_PORT},bind={INNER_HOST},reuseaddr,fork",
                f"UNIX-CONNECT:{self.socket}",
            )
        except BaseException:
            self.isolated.remove_pod_netns(space)
            raise
        self._nodes[node] = (space, inner)
        try:
            self._wait_listening(space.name, inner)
        except BaseException:
            self.remove_node(node)
            raise

    def remove_node(self, node: str) -> None:
        """The node is gone: its namespace (and what still runs there) goes too."""
        found = self._nodes.pop(node, None)
        if found is not None:
            space, inner = found
            terminate(inner, STOP_TIMEOUT_S)
            self.isolated.remove_pod_netns(space)

    def wrap(self, argv: Sequence[str], environment: Mapping[str, str]) -> list[str]:
        """``argv`` in its node's network namespace (``NODE_NAME`` in ``environment``), in a
        mount namespace of its own that holds the service account folder."""
        node = environment.get(NODE_NAME_KEY)
        if node is None or node not in self._nodes:
            raise TargetError(f"no worker node namespace for an adaptor with NODE_NAME={node!r}")
        return [
            "ip", "netns", "exec", self._nodes[node][0].name,
            "unshare", "--mount", "--propagation", "slave", "--",
            "sh", "-c", _MOUNT, "sh", str(self.folder / "serviceaccount"), str(SERVICE_ACCOUNT_DIR), *argv,
        ]  # fmt: skip

    @staticmethod
    def describe(namespace: str) -> str:
        """How an adaptor process reaches the cluster, for the report's identity."""
        return (
            f"in-cluster configuration: service account {namespace}/{SERVICE_ACCOUNT} with the chart's "
            f"grants, NODE_NAME, the API server at {INNER_HOST}:{INNER_PORT} in each node's network "
            "namespace (socat to the host's loopback)"
        )

    # -- set-up ---------------------------------------------------------------------------
    def _grant(self) -> None:
        from kubernetes.client.exceptions import ApiException

        for item in load_all(RBAC.read_text(encoding="utf-8"), source=str(RBAC)):
            try:
                kube_utils.create_from_dict(self.api, item)
            except kube_utils.FailToCreateError as exc:
                if not all(getattr(e, "status", None) == 409 for e in exc.api_exceptions):
                    raise TargetError(f"{RBAC}: the API server refused it: {exc}") from None
        import kubernetes.client as kube_client

        core: Any = kube_client.CoreV1Api(self.api)
        try:
            answer = core.create_namespaced_service_account_token(
                SERVICE_ACCOUNT, self.namespace, {"spec": {"expirationSeconds": TOKEN_SECONDS}}
            )
        except ApiException as exc:
            raise TargetError(
                f"no token for service account {SERVICE_ACCOUNT}: {exc.status} {exc.reason}"
            ) from None
        folder = self.folder / "serviceaccount"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "token").write_text(answer.status.token, encoding="ascii")
        shutil.copyfile(self.api.configuration.ssl_ca_cert, folder / "ca.crt")
        (folder / "namespace").write_text(self.namespace, encoding="ascii")

    def _mount_point(self) -> None:
        """The fixed path must exist to be mounted over; what is made here goes at close."""
        missing = []
        path = SERVICE_ACCOUNT_DIR.resolve()
        while not path.exists():
            missing.append(path)
            path = path.parent
        for folder in reversed(missing):
            folder.mkdir()
            self._made.append(folder)

    def _bridge(self, server_port: int) -> None:
        """The host's side: the unix socket every node's listener connects to."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._outer = self._socat(
            "socat-host",
            ["socat"],
            f"UNIX-LISTEN:{self.socket},fork,unlink-early,mode=600",
            f"TCP:127.0.0.1:{server_port}",
        )
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            self._check_alive(self._outer)
            if time.monotonic() > deadline:
                raise TargetError(f"socat did not make {self.socket} within 10 s")
            time.sleep(0.02)

    def _wait_listening(self, space: str, inner: Process) -> None:
        deadline = time.monotonic() + 10
        probe = local["ip"][
            "netns", "exec", space, sys.executable, "-c", _CONNECT, INNER_HOST, str(INNER_PORT)
        ]
        while probe.run(retcode=None, timeout=10)[0] != 0:
            self._check_alive(inner)
            if time.monotonic() > deadline:
                raise TargetError(f"socat in {space} did not listen on {INNER_HOST}:{INNER_PORT} within 10 s")
            time.sleep(0.05)

    def _socat(self, name: str, command: Sequence[str], *addresses: str) -> Process:
        """A socat process dying with the suite, its messages in the run's folder."""
        log = self.folder / f"{name}.log"
        with log.open("ab") as output:
            process: Process = local[command[0]][[*command[1:], *addresses]].popen(
                stdin=subprocess.DEVNULL, stdout=output, stderr=output, preexec_fn=die_with_parent
            )
        self._logs[process.pid] = log
        return process

    def _check_alive(self, process: Process) -> None:
        if process.poll() is not None:
            error = self._logs[process.pid].read_text(errors="replace").strip()[-600:]
            raise TargetError(f"socat joining the adaptors' namespaces to the API server exited: {error}")

    def close(self) -> None:
        """Stop the bridge and the nodes' namespaces; remove the folders made for the mount point
        (if no one else uses them)."""
        for node in list(self._nodes):
            self.remove_node(node)
        if self._outer is not None:
            terminate(self._outer, STOP_TIMEOUT_S)
            self._outer = None
        for folder in reversed(self._made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._made.clear()
        shutil.rmtree(self.folder, ignore_errors=True)
