"""The cluster target itself: the cluster it connects to or starts, and what every scenario shares."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kubernetes.client as _client
import kubernetes.config as _kube_config
import yaml
from kubernetes.client.exceptions import ApiException

from sim import __version__
from sim.errors import ConformanceInputError
from sim.harness.targets.base import (
    Target,
    TargetOptions,
    provided_by,
)
from sim.harness.targets.cluster.environment import OSC_NAMESPACE, ApiServerEnvironment
from sim.paths import FIXTURES_DIR
from sim.peerpods.providers.memory import MemoryProvider
from sim.yamlload import load_all, load_one

if TYPE_CHECKING:
    from sim.harness.targets.adaptorprocess.host import AdaptorHost
    from sim.harness.targets.cluster.incluster import InClusterAccess

#: The Kubernetes client, untyped here: objects are read as JSON-shaped data.
client: Any = _client
kube_config: Any = _kube_config

RUNTIME_CLASS = FIXTURES_DIR / "cluster" / "runtimeclass-kata-remote.yaml"
OTHER_RUNTIME_CLASSES_FILE = FIXTURES_DIR / "cluster" / "runtimeclasses-other.yaml"
CLUSTERS = ("local", "kind", "k3s")
#: ``--adaptor-binary reference``: the suite's reference adaptor, as a process (what CI runs).
REFERENCE_ADAPTOR = "reference"


class WebhookServers:
    """The reference webhook as real HTTPS server processes, one per environment of settings.

    Started on first use and kept for the run (a scenario that changes TARGET_RUNTIMECLASS
    gets its own server; the next scenario goes back to the default one).
    """

    def __init__(self, plane: Any = None) -> None:
        self._plane = plane  # the control plane's pid file also lists the servers
        self._stack = contextlib.ExitStack()
        self._servers: dict[tuple[tuple[str, str], ...], Any] = {}
        self._lock = threading.Lock()

    def get(self, env: Mapping[str, str]) -> Any:
        from sim.server.launch import launched

        key = tuple(sorted(env.items()))
        with self._lock:
            if key not in self._servers:
                server = self._stack.enter_context(launched(env=dict(env)))
                if self._plane is not None and self._plane.run_dir is not None:
                    self._plane.record_process("webhook-server", server.process.pid, str(server.ca))
                self._servers[key] = server
            return self._servers[key]

    def log_files(self) -> dict[str, Path]:
        """Each server's log (stdout and stderr), by the settings it was started with."""
        with self._lock:
            servers = list(self._servers.items())
        named: dict[str, Path] = {}
        for index, (key, server) in enumerate(servers):
            settings = re.sub(r"[^A-Za-z0-9_.=-]+", "_", ",".join(f"{k}={v}" for k, v in key)) or "default"
            named[f"webhook-server/{index}-{settings}.log"] = server.log
        return named

    def close(self) -> None:
        self._stack.close()
        self._servers.clear()


class ClusterTarget(Target):
    """A real kube-apiserver and kube-scheduler; local (started here) or given by kubeconfig."""

    name = "cluster"
    environment_class = ApiServerEnvironment
    #: The LPAR its node agents' pod VMs run on (``--libvirt-uri``), one per LPAR of several.
    per_lpar_facts = frozenset({"pod VMs"})

    def __init__(
        self,
        api: Any,
        *,
        mode: str,
        kubeconfig: Path | None,
        plane: Any = None,
        libvirt_uri: str | None = None,
        adaptors: AdaptorHost | None = None,
    ) -> None:
        self.mode = mode
        self.kubeconfig = kubeconfig
        self.plane = plane
        self.libvirt_uri = libvirt_uri
        self.run_id = secrets.token_hex(4)
        self.local = plane is not None
        self.started = False
        #: with --adaptor-binary each node's adaptor is a process under test, on the run's own
        #: isolated LPAR (``adaptors``); with --libvirt-uri the in-process adaptors' provider is a
        #: libvirt provider on that LPAR
        self.adaptors = adaptors
        self.incluster: InClusterAccess | None = None
        self.lpar: Any = adaptors
        if libvirt_uri:
            from sim.harness.targets.lparhost import LparHost

            self.lpar = LparHost(libvirt_uri)
        self.webhooks = WebhookServers(plane) if self.local else None
        self.created_namespaces: set[str] = set()
        self.server_version = ""
        self.api: Any = None
        if api is not None:
            self._connected(api)

    def _connected(self, api: Any) -> None:
        from sim.harness.targets.cluster.nodeagent import NodeAgents

        self.api = api
        self.core = client.CoreV1Api(api)
        self.server_version = self._server_version()
        self.agents = NodeAgents(api)
        self.started = True

    def _start(self) -> None:
        """Start the local control plane on first use (building the target only checks the
        binaries, so a run's up-front identity check costs no start)."""
        if self.started or self.plane is None:
            return
        self.plane.start()
        try:
            self.kubeconfig = self.plane.kubeconfig
            self._connected(kube_config.new_client_from_config(config_file=str(self.plane.kubeconfig)))
            self._bootstrap()
            if self.adaptors is not None and self.adaptors.isolated is not None:
                from sim.harness.targets.cluster.incluster import InClusterAccess

                self.incluster = InClusterAccess(
                    self.api, self.plane.api_port, OSC_NAMESPACE, self.adaptors.isolated, self.plane.run_dir
                )
                self.adaptors.wrap = self.incluster.wrap
            self.agents.start()
        except BaseException:
            self.close()
            raise

    @property
    def capabilities(self) -> frozenset[str]:
        """A given cluster is used as deployed (no nodes, settings or pod VMs of the suite's);
        an LPAR only with --libvirt-uri, and guests only on a real one."""
        offered = set(provided_by(self.environment_class))
        if not self.local:
            offered -= {"webhook-settings", "cluster", "podvm"}
        if self.adaptors is None:  # the in-process reference adaptors run no process, and boot directly
            offered -= {"adaptor-process", "podvm-network"}
        if self.lpar is None:
            offered -= {"lpar-host", "guest"}
        elif self.lpar.simulated:
            offered.discard("guest")
        return frozenset(offered)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_options(cls, options: TargetOptions) -> ClusterTarget:
        options.refuse("cluster", "webhook_url", "webhook_ca", "webhook_config")
        kubeconfig = options.extra.get("kubeconfig")
        context = options.extra.get("context")
        mode = options.extra.get("cluster") or ("kubeconfig" if kubeconfig else "local")
        binary = options.extra.get("adaptor_binary")
        if kubeconfig and (options.libvirt_uri or binary):
            flag = "--libvirt-uri" if options.libvirt_uri else "--adaptor-binary"
            raise ConformanceInputError(
                f"{flag}: only with --cluster local (the adaptors and pod VMs of a given cluster are its own)"
            )
        if binary and options.libvirt_uri:
            raise ConformanceInputError(
                "--adaptor-binary with --target cluster runs the adaptors in an LPAR the run makes itself "
                "(their network namespace reaches the API server); leave out --libvirt-uri"
            )
        if kubeconfig:
            return cls(connect(Path(kubeconfig), context), mode="kubeconfig", kubeconfig=Path(kubeconfig))
        if context:
            raise ConformanceInputError("--context needs --kubeconfig")
        if mode not in CLUSTERS:
            raise ConformanceInputError(f"--cluster {mode!r}: expected one of {', '.join(CLUSTERS)}")
        if mode in ("kind", "k3s"):
            require_container_engine(mode)
            raise ConformanceInputError(
                f"--cluster {mode}: a container engine answers, but creating {mode} clusters is not "
                "implemented yet; create one yourself and pass --kubeconfig"
            )
        adaptors = None
        if binary:
            from sim.harness.targets.adaptorprocess.host import AdaptorHost
            from sim.harness.targets.cluster.incluster import require_tools

            require_tools()

            cache = options.extra.get("lpar_cache")
            adaptors = AdaptorHost(
                None,
                binary=None if binary == REFERENCE_ADAPTOR else Path(binary),
                cache=Path(cache) if cache else None,
                lpar_host=options.extra.get("lpar_host") or "ibmz",
            )
        try:
            return cls.start_local(
                options.libvirt_uri, build=not options.extra.get("no_build"), adaptors=adaptors
            )
        except BaseException:
            if adaptors is not None:
                adaptors.close()
            raise

    @classmethod
    def start_local(
        cls, libvirt_uri: str | None = None, *, build: bool = True, adaptors: AdaptorHost | None = None
    ) -> ClusterTarget:
        from sim.harness.targets.cluster.build import require_binaries
        from sim.harness.targets.cluster.controlplane import ControlPlane

        plane = ControlPlane(require_binaries(build=build))
        return cls(
            None, mode="local", kubeconfig=None, plane=plane, libvirt_uri=libvirt_uri, adaptors=adaptors
        )

    def _server_version(self) -> str:
        info = client.VersionApi(self.api).get_code()
        return str(info.git_version)

    def _bootstrap(self) -> None:
        """What the operator installs once: RuntimeClasses and the adaptor's namespace."""
        node_api = client.NodeV1Api(self.api)
        node_api.create_runtime_class(
            load_one(RUNTIME_CLASS.read_text(encoding="utf-8"), source=str(RUNTIME_CLASS))
        )
        others = OTHER_RUNTIME_CLASSES_FILE
        for other in load_all(others.read_text(encoding="utf-8"), source=str(others)):
            node_api.create_runtime_class(other)
        self.core.create_namespace({"metadata": {"name": OSC_NAMESPACE}})

    def identity(self) -> dict[str, str]:
        if self.local:
            assert self.plane is not None
            versions = self.plane.versions
            return {
                "implementation": "local Kubernetes control plane built from Kubernetes' Go modules",
                "kube-apiserver": f"kube-apiserver {self.server_version or versions['kube-apiserver']}",
                "kube-scheduler": f"kube-scheduler {versions['kube-scheduler']}",
                "etcd": f"etcd {versions['etcd']}",
                "nodes": "simulated kubelets (peerpods-conformance node agents: kubelet + Kata runtime + "
                + (
                    "Kata shim; each node's cloud-api-adaptor is a process under test)"
                    if self.adaptors
                    else "cloud-api-adaptor stand-ins)"
                ),
                "pod VMs": (
                    f"libvirt at {self.lpar.uri}: {self.lpar.identity().get('pod VMs')}"
                    if self.lpar is not None
                    else "in-memory provider (reference pod VM logic on real files)"
                ),
                **self._adaptor_identity(),
                "webhook": f"peerpods-conformance reference webhook {__version__} (HTTPS server process)",
                "admission": "kube-apiserver's default plugins but ServiceAccount; authorization Node,RBAC",
            }
        return {
            "implementation": "the cluster of the given kubeconfig",
            "kubeconfig": str(self.kubeconfig),
            "kube-apiserver": f"kube-apiserver {self.server_version}",
            "nodes": "the cluster's own",
        }

    def _adaptor_identity(self) -> dict[str, str]:
        """The adaptor processes under test, as the adaptor target names them."""
        if self.adaptors is None:
            return {}
        named = {
            key: value
            for key, value in self.adaptors.identity().items()
            if key.startswith(("adaptor", "LPAR", "pod VM image", "libvirt host"))
        }
        from sim.harness.targets.cluster.incluster import InClusterAccess

        named["adaptor's way into the cluster"] = InClusterAccess.describe(OSC_NAMESPACE)
        return named

    def open_environment(self) -> ApiServerEnvironment:
        self._start()
        if self.adaptors is not None:
            return ApiServerEnvironment(self, self.adaptors.observed())
        lpar = self.lpar
        return ApiServerEnvironment(
            self, lpar.provider(ownership=lpar.ownership) if lpar is not None else MemoryProvider()
        )

    def log_files(self) -> dict[str, Path]:
        """The local control plane's logs (etcd, kube-apiserver, kube-scheduler), the reference
        webhook servers' it started, and the adaptor processes' (with their LPAR's)."""
        logs = self.webhooks.log_files() if self.webhooks is not None else {}
        if self.adaptors is not None:
            logs.update(self.adaptors.log_files())
        if self.plane is not None and self.plane.run_dir is not None:
            logs.update({f"controlplane/{log.name}": log for log in sorted(self.plane.run_dir.glob("*.log"))})
        return logs

    def close(self) -> None:
        try:
            if self.started:
                self.agents.close()
                for namespace in sorted(self.created_namespaces):
                    with contextlib.suppress(ApiException):
                        self.core.delete_namespace(namespace)
        finally:
            if self.webhooks is not None:
                self.webhooks.close()
            if self.api is not None:
                with contextlib.suppress(Exception):
                    self.api.close()
            if self.incluster is not None:
                self.incluster.close()
                self.incluster = None
            if self.plane is not None:
                self.plane.stop()
            self.started = False
            if self.lpar is not None:
                self.lpar.close()


def connect(kubeconfig: Path, context: str | None) -> Any:
    """An API client for a kubeconfig's cluster; exit 2 naming the file, context or server."""
    if not kubeconfig.is_file():
        raise ConformanceInputError(f"--kubeconfig {kubeconfig}: no such file")
    try:
        api = kube_config.new_client_from_config(config_file=str(kubeconfig), context=context)
    except (kube_config.ConfigException, yaml.YAMLError, ValueError, TypeError) as exc:
        what = f"context {context!r} of " if context else ""
        raise ConformanceInputError(f"--kubeconfig {kubeconfig}: cannot use {what}it: {exc}") from None
    try:
        client.VersionApi(api).get_code(_request_timeout=5)
    except Exception as exc:
        server = api.configuration.host
        api.close()
        raise ConformanceInputError(
            f"--kubeconfig {kubeconfig}: the cluster at {server} does not answer: {exc}"
        ) from None
    return api


def require_container_engine(mode: str) -> None:
    """kind and k3s run in containers: some engine must answer, else exit 2 naming what was tried."""
    candidates = []
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        candidates.append(host[len("unix://") :])
    candidates += [
        "/var/run/docker.sock",
        "/run/podman/podman.sock",
        f"/run/user/{os.getuid()}/podman/podman.sock",
    ]
    for path in candidates:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            try:
                sock.connect(path)
            except OSError:
                continue
            sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            if b"200" in sock.recv(64):
                return
    raise ConformanceInputError(
        f"--cluster {mode}: no container engine answers (tried {', '.join(candidates)}); "
        f"{mode} needs Docker or Podman; use --cluster local, or --kubeconfig for an existing cluster"
    )
