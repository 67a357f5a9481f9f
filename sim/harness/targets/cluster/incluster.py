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
* **the route to the API server.** The adaptors run inside the isolated LPAR's network
  namespace and the control plane listens on the host's loopback. Two ``socat`` processes
  join them through a unix socket in the run's folder: one listens on the namespace's loopback
  (``127.0.0.1:6443``, an address the API server's certificate names), the other connects to
  the API server. Traffic stays on loopback on both sides.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kubernetes.utils as _kube_utils
from plumbum import local

from sim.errors import ConformanceInputError, TargetError
from sim.lpar.isolated import IsolatedLpar
from sim.paths import FIXTURES_DIR
from sim.peerpods.nodecapacity import NODE_NAME_KEY
from sim.processes import Process, die_with_parent, terminate
from sim.yamlload import load_all

#: The Kubernetes client's helpers, untyped here.
kube_utils: Any = _kube_utils

__all__ = ["SERVICE_ACCOUNT_DIR", "InClusterAccess"]

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


class InClusterAccess:
    """An adaptor process's way into the cluster at ``server`` (see the module doc)."""

    def __init__(
        self, api: Any, server_port: int, namespace: str, isolated: IsolatedLpar, run_dir: Path
    ) -> None:
        if shutil.which("socat") is None:
            raise ConformanceInputError(
                "--target cluster --adaptor-binary: socat is missing (apt-get install socat); it joins the "
                "adaptors' network namespace to the API server on the host's loopback"
            )
        self.api = api
        self.namespace = namespace
        self.isolated = isolated
        self.folder = run_dir / "incluster"
        self._made: list[Path] = []
        self._bridges: list[Process] = []
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

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` in a mount namespace of its own that holds the service account folder."""
        return [
            "unshare", "--mount", "--propagation", "slave", "--",
            "sh", "-c", _MOUNT, "sh", str(self.folder / "serviceaccount"), str(SERVICE_ACCOUNT_DIR), *argv,
        ]  # fmt: skip

    @staticmethod
    def describe(namespace: str) -> str:
        """How an adaptor process reaches the cluster, for the report's identity."""
        return (
            f"in-cluster configuration: service account {namespace}/{SERVICE_ACCOUNT} with the chart's "
            f"grants, NODE_NAME, the API server at {INNER_HOST}:{INNER_PORT} inside the LPAR's namespace "
            "(socat to the host's loopback)"
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
        socket = self.folder / "apiserver.sock"
        outer = local["socat"][
            f"UNIX-LISTEN:{socket},fork,unlink-early,mode=600", f"TCP:127.0.0.1:{server_port}"
        ]
        self._bridges.append(
            outer.popen(
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=die_with_parent,
            )
        )
        inner = [
            "socat",
            f"TCP-LISTEN:{INNER_PORT},bind={INNER_HOST},reuseaddr,fork",
            f"UNIX-CONNECT:{socket}",
        ]
        self._bridges.append(self.isolated.popen(inner, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        deadline = time.monotonic() + 10
        while True:
            for process in self._bridges:
                if process.poll() is not None:
                    error = process.stderr.read().decode(errors="replace").strip() if process.stderr else ""
                    raise TargetError(f"socat joining the LPAR's namespace to the API server exited: {error}")
            try:
                if socket.exists():
                    self.isolated.run(
                        [sys.executable, "-c", _CONNECT, INNER_HOST, str(INNER_PORT)], timeout=10
                    )
                    return
            except TargetError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def close(self) -> None:
        """Stop the bridge; remove the folders made for the mount point (if no one else uses them)."""
        for process in self._bridges:
            terminate(process, STOP_TIMEOUT_S)
        self._bridges.clear()
        for folder in reversed(self._made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._made.clear()
        shutil.rmtree(self.folder, ignore_errors=True)
