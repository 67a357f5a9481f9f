"""ttrpc's framing on a stream socket, for both ends of a call (containerd/ttrpc PROTOCOL.md).

A frame is a 10-byte header -- data length (uint32), stream id (uint32), message type (uint8),
flags (uint8), all big-endian -- then the data: a protobuf ``ttrpc.Request`` (type 1) or
``ttrpc.Response`` (type 2). Clients number their streams with odd ids. Data longer than
4 MiB is refused: a receiver reads past it and answers ``RESOURCE_EXHAUSTED``.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass

__all__ = [
    "HEADER",
    "MAX_DATA",
    "MAX_SOCKET_PATH",
    "TYPE_REQUEST",
    "TYPE_RESPONSE",
    "Code",
    "Frame",
    "FrameTooLarge",
    "PeerClosed",
    "check_socket_path",
    "read_frame",
    "write_frame",
]

HEADER = struct.Struct(">IIBB")
MAX_DATA = 4 << 20
TYPE_REQUEST = 1
TYPE_RESPONSE = 2


class Code:
    """The gRPC status codes a ttrpc Response carries (google.golang.org/grpc/codes)."""

    OK = 0
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    FAILED_PRECONDITION = 9
    RESOURCE_EXHAUSTED = 8
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14

    @staticmethod
    def name(code: int) -> str:
        for key, value in vars(Code).items():
            if value == code and key.isupper():
                return key
        return f"code {code}"


class PeerClosed(ConnectionError):
    """The other end closed the connection (between frames, or in the middle of one)."""


class FrameTooLarge(ValueError):
    """A frame announced more than :data:`MAX_DATA` bytes; its data was read and dropped."""

    def __init__(self, stream_id: int, length: int) -> None:
        super().__init__(f"message length {length} exceeds the maximum of {MAX_DATA} bytes")
        self.stream_id = stream_id
        self.length = length


@dataclass(frozen=True)
class Frame:
    stream_id: int
    type: int
    flags: int
    data: bytes


def _read_exactly(sock: socket.socket, size: int, *, started: bool) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = sock.recv(min(left, 1 << 16))
        if not chunk:
            where = "in the middle of a frame" if started or chunks else "between frames"
            raise PeerClosed(f"the peer closed the connection {where}")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _skip(sock: socket.socket, size: int) -> None:
    while size:
        chunk = sock.recv(min(size, 1 << 16))
        if not chunk:
            raise PeerClosed("the peer closed the connection in the middle of a frame")
        size -= len(chunk)


def read_frame(sock: socket.socket) -> Frame:
    """The next frame; :class:`PeerClosed` at the end, :class:`FrameTooLarge` past the limit."""
    length, stream_id, kind, flags = HEADER.unpack(_read_exactly(sock, HEADER.size, started=False))
    if length > MAX_DATA:
        _skip(sock, length)
        raise FrameTooLarge(stream_id, length)
    return Frame(stream_id, kind, flags, _read_exactly(sock, length, started=True))


def write_frame(sock: socket.socket, lock: threading.Lock, frame: Frame) -> None:
    """Send one frame whole (``lock`` keeps concurrent writers' frames apart)."""
    if len(frame.data) > MAX_DATA:
        raise FrameTooLarge(frame.stream_id, len(frame.data))
    header = HEADER.pack(len(frame.data), frame.stream_id, frame.type, frame.flags)
    with lock:
        sock.sendall(header + frame.data)


#: sockaddr_un's sun_path holds 108 bytes, the terminating NUL included.
MAX_SOCKET_PATH = 107


def check_socket_path(path: str, *, what: str) -> None:
    """ValueError naming ``what`` when ``path`` cannot be a unix socket's address."""
    size = len(path.encode())
    if size > MAX_SOCKET_PATH:
        raise ValueError(
            f"{what} {path} is {size} bytes long; a unix socket path holds at most {MAX_SOCKET_PATH}"
        )
