"""The reference cloud-api-adaptor behind the remote hypervisor API (``hypervisor.Hypervisor``).

What CAA's ``pkg/adaptor/cloud/cloud.go`` does for the Kata shim, on top of the reference
:class:`~sim.peerpods.adaptor.CloudApiAdaptor` and its provider:

* ``CreateVM`` remembers the sandbox (its id, the annotations the shim sent, the pod's
  network namespace), makes ``<pods-dir>/<id>/`` with the tunnel's ``apf.json`` and answers
  ``<pods-dir>/<id>/agent.ttrpc``, where the shim then reaches the Kata agent.
* ``StartVM`` creates the pod VM through the provider and returns once it is ready; when it
  cannot be created or never becomes ready, the error is the answer (and nothing is left).
* ``StopVM`` deletes the pod VM (the sandbox's directory stays, as upstream leaves it).
* ``Version`` answers the adaptor's version.

The pod's name and namespace come from the CRI annotations the shim forwards
(:data:`~sim.peerpods.kata.ANN_SANDBOX_NAME`); the sizing and initdata annotations are read
exactly as the in-process adaptor reads them. Errors carry upstream's words (all with the
status code ``UNKNOWN``, as ttrpc gives a Go error that is not a status), e.g.
``creating an instance : <the provider's reason>``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.peerpods.adaptor import CloudApiAdaptor, PodVMError, apf_json
from sim.peerpods.hypervisor import hypervisor_pb2 as pb
from sim.peerpods.hypervisor.client import SERVICE
from sim.peerpods.hypervisor.server import Method, ServiceError
from sim.peerpods.hypervisor.wire import Code
from sim.peerpods.kata import ANN_SANDBOX_NAME, ANN_SANDBOX_NAMESPACE

__all__ = [
    "AGENT_SOCKET",
    "APF_JSON",
    "SEAM_SILENT",
    "VERSION",
    "HypervisorService",
]

#: What the adaptor answers to ``Version`` (CAA ``pkg/adaptor/server.go``).
VERSION = "0.0.0"
AGENT_SOCKET = "agent.ttrpc"
#: The reference adaptor's test seam, read from its environment (never a CAA setting): boot guests
#: that never report and wait that many seconds for them. (libvirt failing half-way is the LPAR's
#: doing, for any adaptor: :mod:`sim.lpar.libvirt_faults`.)
SEAM_SILENT = "PEERPODS_TEST_SILENT_GUESTS"
APF_JSON = "apf.json"


@dataclass
class _Sandbox:
    id: str
    pod: dict[str, Any]
    netns: str
    vm: str | None = None


class HypervisorService:
    """The four calls, served for one adaptor; ``wait_ready(vm)`` blocks until the pod VM is
    ready and raises with the reason when it never becomes ready."""

    def __init__(
        self,
        adaptor: CloudApiAdaptor,
        pods_dir: Path,
        wait_ready: Callable[[str], object] | None = None,
    ) -> None:
        self.adaptor = adaptor
        self.pods_dir = pods_dir
        self._wait_ready = wait_ready
        self._sandboxes: dict[str, _Sandbox] = {}
        self._lock = threading.Lock()

    def methods(self) -> dict[str, dict[str, Method]]:
        return {
            SERVICE: {
                "CreateVM": Method(pb.CreateVMRequest, self.create_vm),
                "StartVM": Method(pb.StartVMRequest, self.start_vm),
                "StopVM": Method(pb.StopVMRequest, self.stop_vm),
                "Version": Method(pb.VersionRequest, self.version),
            }
        }

    def version(self, request: pb.VersionRequest) -> pb.VersionResponse:
        return pb.VersionResponse(version=VERSION)

    def create_vm(self, request: pb.CreateVMRequest) -> pb.CreateVMResponse:
        sandbox_id = _sandbox_id(request.id)
        pod = pod_from_annotations(request.annotations)
        directory = self.pods_dir / sandbox_id
        directory.mkdir(parents=True, exist_ok=True)
        (directory / APF_JSON).write_text(apf_json(pod) + "\n", encoding="utf-8")
        with self._lock:  # upstream checks for a duplicate after writing apf.json (cloud.go CreateVM)
            if sandbox_id in self._sandboxes:
                raise ServiceError(Code.UNKNOWN, f"adding sandbox: sandbox {sandbox_id} already exists")
            self._sandboxes[sandbox_id] = _Sandbox(sandbox_id, pod, request.networkNamespacePath)
        return pb.CreateVMResponse(agentSocketPath=str(directory / AGENT_SOCKET))

    def start_vm(self, request: pb.StartVMRequest) -> pb.StartVMResponse:
        sandbox = self._sandbox(request.id, "getting sandbox")
        if sandbox.vm is not None:  # upstream finds the domain by name, with no IP to wait for
            raise ServiceError(Code.UNKNOWN, "instance IP is not available")
        try:
            vm = self.adaptor.create_pod_vm(sandbox.pod, sandbox.id)
        except PodVMError as exc:
            raise ServiceError(Code.UNKNOWN, f"creating an instance : {exc.__cause__ or exc}") from None
        sandbox.vm = vm
        if self._wait_ready is not None:
            try:
                self._wait_ready(vm)
            except Exception as exc:  # never ready: the shim gets why, and nothing stays
                sandbox.vm = None
                self._delete(vm)
                raise ServiceError(
                    Code.UNKNOWN, f"creating an instance : pod VM {vm} did not become ready: {exc}"
                ) from None
        return pb.StartVMResponse()

    def stop_vm(self, request: pb.StopVMRequest) -> pb.StopVMResponse:
        sandbox = self._sandbox(request.id, "stopping VM")
        if sandbox.vm is not None:
            self._delete(sandbox.vm)
            sandbox.vm = None
        with self._lock:
            self._sandboxes.pop(sandbox.id, None)
        return pb.StopVMResponse()

    def _delete(self, vm: str) -> None:
        try:
            self.adaptor.delete_pod_vm(vm)
        except Exception as exc:
            raise ServiceError(Code.INTERNAL, f"deleting pod VM {vm}: {exc}") from None

    def _sandbox(self, sandbox_id: str, doing: str) -> _Sandbox:
        with self._lock:
            sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None:
            raise ServiceError(Code.UNKNOWN, f"{doing}: sandbox {sandbox_id} does not exist")
        return sandbox


def _sandbox_id(raw: str) -> str:
    """The sandbox id names a directory: it must be one path component (upstream checks only
    that it is not empty; the reference also refuses one that would leave the pods dir)."""
    if not raw:
        raise ServiceError(Code.UNKNOWN, "empty sandbox id")
    if raw in (".", "..") or "/" in raw or "\0" in raw:
        raise ServiceError(Code.INVALID_ARGUMENT, f"{raw!r} is not a sandbox id")
    return raw


def pod_from_annotations(annotations: Mapping[str, str]) -> dict[str, Any]:
    """The pod as the adaptor knows it: its name and namespace and the shim's annotations."""
    name = annotations.get(ANN_SANDBOX_NAME, "")
    if not name:
        raise ServiceError(Code.UNKNOWN, f"pod name {ANN_SANDBOX_NAME} is missing in annotations")
    namespace = annotations.get(ANN_SANDBOX_NAMESPACE, "")
    if not namespace:
        raise ServiceError(Code.UNKNOWN, f"namespace name {ANN_SANDBOX_NAMESPACE} is missing in annotations")
    return {"metadata": {"name": name, "namespace": namespace, "annotations": dict(annotations)}}
