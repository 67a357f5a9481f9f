"""The Kata shim's side of the remote hypervisor API: what the suite sends a cloud-api-adaptor.

kata-containers ``src/runtime/virtcontainers/remote.go`` dials the adaptor's unix socket and
calls ``hypervisor.Hypervisor`` over ttrpc: ``CreateVM`` with the sandbox id, annotations and
the pod's network namespace, then ``StartVM`` (which returns once the pod VM is ready),
``StopVM`` when the sandbox ends, and ``Version``. :class:`HypervisorClient` makes those calls
one at a time on one connection, each with its deadline (sent in the request as ttrpc does,
and enforced on the socket).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from sim.peerpods.hypervisor import hypervisor_pb2 as pb
from sim.peerpods.hypervisor import ttrpc_pb2
from sim.peerpods.hypervisor.wire import (
    TYPE_REQUEST,
    TYPE_RESPONSE,
    Code,
    Frame,
    FrameTooLarge,
    PeerClosed,
    check_socket_path,
    read_frame,
    write_frame,
)

__all__ = ["SERVICE", "AdaptorUnreachable", "HypervisorClient", "RemoteError"]

SERVICE = "hypervisor.Hypervisor"
R = TypeVar("R", bound=Message)


class AdaptorUnreachable(ConnectionError):
    """The adaptor's socket cannot be reached, closed the call, or did not answer in time."""


class RemoteError(Exception):
    """The adaptor answered the call with an error status."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: {message} ({Code.name(code)})")
        self.method = method
        self.code = code
        self.message = message


class HypervisorClient:
    """One connection to an adaptor's ``hypervisor.Hypervisor`` service."""

    def __init__(self, socket_path: str, *, connect_timeout: float = 5.0) -> None:
        check_socket_path(socket_path, what="the adaptor socket")
        self.socket_path = socket_path
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stream = 1
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(connect_timeout)
        try:
            sock.connect(socket_path)
        except OSError as exc:
            sock.close()
            raise AdaptorUnreachable(
                f"cannot connect to the adaptor at {socket_path}: {exc.strerror or exc}"
            ) from None
        self._sock = sock

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> HypervisorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the four calls --------------------------------------------------------------------
    def version(self, version: str, *, timeout: float = 10.0) -> str:
        reply = self.call("Version", pb.VersionRequest(version=version), pb.VersionResponse, timeout)
        return reply.version

    def create_vm(
        self, sandbox_id: str, annotations: Mapping[str, str], netns: str, *, timeout: float = 60.0
    ) -> str:
        request = pb.CreateVMRequest(id=sandbox_id, annotations=dict(annotations), networkNamespacePath=netns)
        return self.call("CreateVM", request, pb.CreateVMResponse, timeout).agentSocketPath

    def start_vm(self, sandbox_id: str, *, timeout: float) -> None:
        self.call("StartVM", pb.StartVMRequest(id=sandbox_id), pb.StartVMResponse, timeout)

    def stop_vm(self, sandbox_id: str, *, timeout: float = 60.0) -> None:
        self.call("StopVM", pb.StopVMRequest(id=sandbox_id), pb.StopVMResponse, timeout)

    # --- one unary call ---------------------------------------------------------------------
    def call(self, method: str, request: Message, reply_type: type[R], timeout: float) -> R:
        """Send ``request`` to ``method`` and wait up to ``timeout`` seconds for its answer."""
        envelope = ttrpc_pb2.Request(
            service=SERVICE,
            method=method,
            payload=request.SerializeToString(),
            timeout_nano=int(timeout * 1e9),
        )
        with self._lock:
            stream_id = self._stream
            self._stream += 2
            self._sock.settimeout(timeout)
            try:
                write_frame(
                    self._sock,
                    self._write_lock,
                    Frame(stream_id, TYPE_REQUEST, 0, envelope.SerializeToString()),
                )
                frame = self._await(stream_id)
            except TimeoutError:
                raise AdaptorUnreachable(
                    f"{method}: the adaptor at {self.socket_path} did not answer within {timeout:g} s"
                ) from None
            except (PeerClosed, OSError) as exc:
                raise AdaptorUnreachable(f"{method}: the adaptor at {self.socket_path}: {exc}") from None
        try:
            response = ttrpc_pb2.Response.FromString(frame.data)
            if response.status.code != Code.OK:
                raise RemoteError(method, response.status.code, response.status.message)
            return reply_type.FromString(response.payload)
        except DecodeError as exc:
            raise AdaptorUnreachable(
                f"{method}: the adaptor's answer is not a ttrpc response: {exc}"
            ) from None

    def _await(self, stream_id: int) -> Frame:
        while True:
            try:
                frame = read_frame(self._sock)
            except FrameTooLarge as exc:
                raise AdaptorUnreachable(
                    f"the adaptor at {self.socket_path} sent a frame too large: {exc}"
                ) from None
            if frame.type == TYPE_RESPONSE and frame.stream_id == stream_id:
                return frame
            # a response to an earlier call that timed out, or a frame of another kind: not ours
