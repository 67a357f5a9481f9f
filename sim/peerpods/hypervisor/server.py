"""A ttrpc server on a unix socket: unary calls, each answered on its own thread.

The reference adaptor serves ``hypervisor.Hypervisor`` with it. A request for an unknown
service or method is answered ``UNIMPLEMENTED``, an undecodable one ``INVALID_ARGUMENT``, a
handler's :class:`ServiceError` with its code and message, and any other exception
``UNKNOWN`` with its text, as ttrpc does: the server never dies on a request. As ttrpc's
server (``server.go``), it refuses an even stream id and one that does not increase. A frame
over 4 MiB is read past and answered ``RESOURCE_EXHAUSTED``; a connection that sends
something that is not a frame at all is closed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError, Message

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

__all__ = ["Method", "ServiceError", "TtrpcServer"]


class ServiceError(Exception):
    """What a handler raises to answer with an error status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Method:
    """One unary method: how to decode its request, and the handler that answers it."""

    request_type: type[Message]
    handler: Callable[[Any], Message]


def _answer(methods: Mapping[str, Mapping[str, Method]], data: bytes) -> ttrpc_pb2.Response:
    try:
        request = ttrpc_pb2.Request.FromString(data)
    except DecodeError as exc:
        return _status(Code.INVALID_ARGUMENT, f"not a ttrpc request: {exc}")
    service = methods.get(request.service)
    if service is None:
        return _status(Code.UNIMPLEMENTED, f"service {request.service}")
    method = service.get(request.method)
    if method is None:
        return _status(Code.UNIMPLEMENTED, f"method {request.method}")
    try:
        message = method.request_type.FromString(request.payload)
    except DecodeError as exc:
        return _status(Code.INVALID_ARGUMENT, f"{request.method}: undecodable request: {exc}")
    try:
        reply = method.handler(message)
    except ServiceError as exc:
        return _status(exc.code, exc.message)
    except Exception as exc:  # a handler's bug must not take the server down; it is the caller's answer
        # ttrpc answers an error that is not a status with UNKNOWN and its text (services.go)
        return _status(Code.UNKNOWN, f"{type(exc).__name__}: {exc}")
    return ttrpc_pb2.Response(payload=reply.SerializeToString())


def _status(code: int, message: str) -> ttrpc_pb2.Response:
    return ttrpc_pb2.Response(status=ttrpc_pb2.Status(code=code, message=message))


class _Connection(socketserver.BaseRequestHandler):
    server: _UnixServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        write_lock = threading.Lock()
        last = 0
        while True:
            try:
                frame = read_frame(sock)
            except FrameTooLarge as exc:
                self._reply(sock, write_lock, exc.stream_id, _status(Code.RESOURCE_EXHAUSTED, str(exc)))
                continue
            except (PeerClosed, OSError):
                return
            if frame.type != TYPE_REQUEST:
                continue  # a client sends requests only; stream data is not served here
            refused = _refused_stream(frame.stream_id, last)
            if refused is not None:
                self._reply(sock, write_lock, frame.stream_id, _status(Code.INVALID_ARGUMENT, refused))
                continue
            last = frame.stream_id
            threading.Thread(
                target=self._serve, args=(sock, write_lock, frame), name="ttrpc-call", daemon=True
            ).start()

    def _serve(self, sock: socket.socket, write_lock: threading.Lock, frame: Frame) -> None:
        self._reply(sock, write_lock, frame.stream_id, _answer(self.server.methods, frame.data))

    @staticmethod
    def _reply(
        sock: socket.socket, lock: threading.Lock, stream_id: int, response: ttrpc_pb2.Response
    ) -> None:
        with contextlib.suppress(OSError, FrameTooLarge):
            write_frame(sock, lock, Frame(stream_id, TYPE_RESPONSE, 0, response.SerializeToString()))


def _refused_stream(stream_id: int, last: int) -> str | None:
    if stream_id % 2 == 0:
        return "StreamID must be odd for client initiated streams"
    if stream_id <= last:
        return "StreamID cannot be re-used and must increment"
    return None


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    methods: Mapping[str, Mapping[str, Method]]


class TtrpcServer:
    """Serves ``methods`` (service name -> method name -> :class:`Method`) on ``path``."""

    def __init__(self, path: Path, methods: Mapping[str, Mapping[str, Method]]) -> None:
        check_socket_path(str(path), what="--socket")
        self.path = path
        _remove_stale(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._server = _UnixServer(str(path), _Connection)
        self._server.methods = methods
        os.chmod(path, 0o600)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve on a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="ttrpc-server",
            daemon=True,
        )
        self._thread.start()

    def shutdown(self) -> None:
        """Stop accepting, close the socket and remove its file."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _remove_stale(path: Path) -> None:
    """A socket file no process listens on is what a killed server left: remove it. A live one
    is another server's, and a file of another kind is not ours to remove: both are errors."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_socket():
        raise FileExistsError(f"--socket {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise FileExistsError(f"--socket {path}: another server is listening there")
