"""The remote hypervisor API on the wire: generated modules, field numbers, ttrpc framing, and
the client and server talking over a real unix socket (sim/peerpods/hypervisor/).

Field numbers and the frame layout are written out by hand here (upstream's numbers, kata's
hypervisor.proto and containerd/ttrpc v1.2.7), so that a change to the .proto files or to the
framing code cannot silently agree with itself.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from google.protobuf.message import Message

from sim.peerpods.hypervisor import hypervisor_pb2 as pb
from sim.peerpods.hypervisor import ttrpc_pb2
from sim.peerpods.hypervisor.client import SERVICE, AdaptorUnreachable, HypervisorClient, RemoteError
from sim.peerpods.hypervisor.generate import PROTO_DIR, PROTOS, generate
from sim.peerpods.hypervisor.server import Method, ServiceError, TtrpcServer
from sim.peerpods.hypervisor.wire import (
    MAX_DATA,
    MAX_SOCKET_PATH,
    Code,
    Frame,
    FrameTooLarge,
    PeerClosed,
    check_socket_path,
    read_frame,
    write_frame,
)

# --- a hand-written protobuf encoder and reader (varint and length-delimited fields only) ----


def varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_bytes(number: int, data: bytes | str) -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return varint(number << 3 | 2) + varint(len(raw)) + raw


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3 | 0) + varint(value)


def read_fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) in wire order; fails on anything but wire types 0 and 2."""
    fields: list[tuple[int, int | bytes]] = []
    position = 0

    def next_varint() -> int:
        nonlocal position
        shift = result = 0
        while True:
            byte = data[position]
            position += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    while position < len(data):
        key = next_varint()
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            fields.append((number, next_varint()))
        elif wire_type == 2:
            size = next_varint()
            fields.append((number, data[position : position + size]))
            position += size
        else:
            raise AssertionError(f"unexpected wire type {wire_type} for field {number}")
    return fields


def header(length: int, stream_id: int, kind: int, flags: int) -> bytes:
    """A ttrpc frame header, spelled out: big-endian uint32, uint32, uint8, uint8."""
    return length.to_bytes(4, "big") + stream_id.to_bytes(4, "big") + bytes([kind, flags])


# --- 1. the generated modules are the .proto files' -------------------------------------------


def test_generated_modules_match_the_proto_files(tmp_path: Path) -> None:
    missing = [name for name in ("grpc_tools", "mypy_protobuf") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(
            f"{' and '.join(missing)} not installed (the test extra brings grpcio-tools and "
            "mypy-protobuf): cannot regenerate the *_pb2 modules to compare them"
        )
    written = generate(out=tmp_path)
    expected = sorted(
        f"{name.removesuffix('.proto')}_pb2{suffix}" for name in PROTOS for suffix in (".py", ".pyi")
    )
    assert sorted(path.name for path in written) == expected
    for path in written:
        committed = PROTO_DIR / path.name
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} differs from what protoc generates from the .proto files: "
            "run python -m sim.peerpods.hypervisor.generate"
        )


# --- 2. field numbers on the wire --------------------------------------------------------------


def test_hand_encoded_create_vm_request_parses_with_upstream_numbers() -> None:
    entry = field_bytes(1, "io.kubernetes.cri.sandbox-name") + field_bytes(2, "web")
    data = field_bytes(1, "abc123") + field_bytes(2, entry) + field_bytes(3, "/run/netns/cni-1")
    request = pb.CreateVMRequest.FromString(data)
    assert request.id == "abc123"
    assert dict(request.annotations) == {"io.kubernetes.cri.sandbox-name": "web"}
    assert request.networkNamespacePath == "/run/netns/cni-1"
    # and the generated encoder writes exactly those bytes (one annotation: a fixed order)
    assert request.SerializeToString() == data


def test_map_entries_are_repeated_key_value_messages() -> None:
    request = pb.CreateVMRequest(id="s", annotations={"a": "1", "b": "2"})
    fields = read_fields(request.SerializeToString())
    entries = [value for number, value in fields if number == 2]
    assert len(entries) == 2
    pairs = {}
    for entry in entries:
        assert isinstance(entry, bytes)
        parsed = dict(read_fields(entry))
        assert set(parsed) == {1, 2}
        pairs[parsed[1]] = parsed[2]
    assert pairs == {b"a": b"1", b"b": b"2"}


@pytest.mark.parametrize(
    ("message_type", "attribute"),
    [
        (pb.VersionRequest, "version"),
        (pb.VersionResponse, "version"),
        (pb.CreateVMResponse, "agentSocketPath"),
        (pb.StartVMRequest, "id"),
        (pb.StopVMRequest, "id"),
    ],
)
def test_single_string_messages_use_field_1(message_type: type[Message], attribute: str) -> None:
    parsed = message_type.FromString(field_bytes(1, "value-1"))
    assert getattr(parsed, attribute) == "value-1"


@pytest.mark.parametrize("message_type", [pb.StartVMResponse, pb.StopVMResponse])
def test_empty_responses_encode_to_nothing(message_type: type[Message]) -> None:
    assert message_type().SerializeToString() == b""


def test_hand_encoded_ttrpc_request_parses() -> None:
    payload = field_bytes(1, "sandbox-1")
    metadata = field_bytes(1, "k") + field_bytes(2, "v")
    data = (
        field_bytes(1, SERVICE)
        + field_bytes(2, "StartVM")
        + field_bytes(3, payload)
        + field_varint(4, 600_000_000_000)
        + field_bytes(5, metadata)
    )
    request = ttrpc_pb2.Request.FromString(data)
    assert (request.service, request.method) == ("hypervisor.Hypervisor", "StartVM")
    assert request.timeout_nano == 600 * 10**9
    assert [(kv.key, kv.value) for kv in request.metadata] == [("k", "v")]
    assert pb.StartVMRequest.FromString(request.payload).id == "sandbox-1"


def test_hand_encoded_ttrpc_responses_parse() -> None:
    status = field_varint(1, 12) + field_bytes(2, "service nope")
    error = ttrpc_pb2.Response.FromString(field_bytes(1, status))
    assert (error.status.code, error.status.message, error.payload) == (12, "service nope", b"")
    success = ttrpc_pb2.Response.FromString(field_bytes(2, field_bytes(1, "0.0.0")))
    assert not success.HasField("status")
    assert pb.VersionResponse.FromString(success.payload).version == "0.0.0"


# --- 3. framing ----------------------------------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    left.settimeout(10)
    right.settimeout(10)
    yield left, right
    left.close()
    right.close()


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"peer closed after {len(data)} of {size} bytes"
        data += chunk
    return data


def send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    """Send more than a socket buffer holds while the test reads."""
    thread = threading.Thread(target=sock.sendall, args=(data,), daemon=True)
    thread.start()
    return thread


def test_frame_header_is_ten_big_endian_bytes(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    write_frame(left, threading.Lock(), Frame(0x01020305, 2, 0x04, b"hello"))
    assert recv_exactly(right, 15) == b"\x00\x00\x00\x05" + b"\x01\x02\x03\x05" + b"\x02\x04" + b"hello"


def test_read_frame_parses_a_hand_made_header(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(header(3, 0x0A0B0C0D, 1, 0x02) + b"abc" + header(0, 7, 2, 0))
    assert read_frame(right) == Frame(0x0A0B0C0D, 1, 0x02, b"abc")
    assert read_frame(right) == Frame(7, 2, 0, b"")


def test_write_refuses_a_frame_over_4_mib_and_sends_nothing(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    assert MAX_DATA == 4 * 1024 * 1024
    with pytest.raises(FrameTooLarge) as caught:
        write_frame(left, threading.Lock(), Frame(9, 1, 0, b"x" * (MAX_DATA + 1)))
    assert (caught.value.stream_id, caught.value.length) == (9, MAX_DATA + 1)
    right.setblocking(False)
    with pytest.raises(BlockingIOError):
        right.recv(1)


def test_a_frame_of_exactly_4_mib_goes_through(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    data = bytes(range(256)) * (MAX_DATA // 256)
    writer = threading.Thread(
        target=write_frame, args=(left, threading.Lock(), Frame(1, 1, 0, data)), daemon=True
    )
    writer.start()
    assert read_frame(right).data == data
    writer.join(10)


def test_read_skips_past_a_frame_over_4_mib(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    oversized = header(MAX_DATA + 1, 5, 1, 0) + b"\xaa" * (MAX_DATA + 1)
    sender = send_in_background(left, oversized + header(2, 7, 1, 0) + b"ok")
    with pytest.raises(FrameTooLarge) as caught:
        read_frame(right)
    assert (caught.value.stream_id, caught.value.length) == (5, MAX_DATA + 1)
    assert read_frame(right) == Frame(7, 1, 0, b"ok")
    sender.join(10)


def test_peer_closed_between_frames(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(header(1, 1, 1, 0) + b"z")
    left.close()
    assert read_frame(right).data == b"z"
    with pytest.raises(PeerClosed, match="between frames"):
        read_frame(right)


@pytest.mark.parametrize(
    "partial",
    [header(10, 1, 1, 0) + b"abc", header(10, 1, 1, 0)[:5]],
    ids=["in-the-data", "in-the-header"],
)
def test_peer_closed_in_the_middle_of_a_frame(
    pair: tuple[socket.socket, socket.socket], partial: bytes
) -> None:
    left, right = pair
    left.sendall(partial)
    left.close()
    with pytest.raises(PeerClosed, match="in the middle of a frame"):
        read_frame(right)


def test_peer_closed_while_an_oversized_frame_is_skipped(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(header(MAX_DATA + 1, 1, 1, 0) + b"x" * 100)
    left.close()
    with pytest.raises(PeerClosed, match="in the middle of a frame"):
        read_frame(right)


def test_check_socket_path_allows_107_bytes_and_refuses_108() -> None:
    assert MAX_SOCKET_PATH == 107
    check_socket_path("/" + "a" * 106, what="--socket")
    with pytest.raises(ValueError, match=r"--socket /a+ is 108 bytes long") as caught:
        check_socket_path("/" + "a" * 107, what="--socket")
    assert "107" in str(caught.value)


def test_check_socket_path_counts_bytes_not_characters() -> None:
    path = "/" + "é" * 54  # 55 characters, 109 bytes
    with pytest.raises(ValueError, match="109 bytes"):
        check_socket_path(path, what="the adaptor socket")


# --- 4. client <-> server on a real unix socket ---------------------------------------------------


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory for sockets (tmp_path may be longer than a socket path allows)."""
    path = Path(tempfile.mkdtemp(prefix="ttrpc-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Serving:
    """A TtrpcServer started on a socket; stopped by the fixture."""

    def __init__(self, path: Path, methods: dict[str, dict[str, Method]]) -> None:
        self.path = path
        self.server = TtrpcServer(path, methods)
        self.server.start()

    def client(self) -> HypervisorClient:
        return HypervisorClient(str(self.path))

    def raw(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(str(self.path))
        return sock


@pytest.fixture
def serve(sockdir: Path) -> Iterator[Callable[[dict[str, dict[str, Method]]], Serving]]:
    started: list[Serving] = []

    def start(methods: dict[str, dict[str, Method]]) -> Serving:
        serving = Serving(sockdir / f"s{len(started)}.sock", methods)
        started.append(serving)
        return serving

    yield start
    for serving in started:
        serving.server.shutdown()


def echo_version(request: pb.VersionRequest) -> pb.VersionResponse:
    return pb.VersionResponse(version=f"echo {request.version}")


def version_only(
    handler: Callable[[pb.VersionRequest], Message] = echo_version,
) -> dict[str, dict[str, Method]]:
    return {SERVICE: {"Version": Method(pb.VersionRequest, handler)}}


def raw_call(sock: socket.socket, stream_id: int, data: bytes) -> Frame:
    write_frame(sock, threading.Lock(), Frame(stream_id, 1, 0, data))
    return read_frame(sock)


def version_request_bytes(version: str) -> bytes:
    return ttrpc_pb2.Request(
        service=SERVICE, method="Version", payload=pb.VersionRequest(version=version).SerializeToString()
    ).SerializeToString()


def test_round_trip(serve: Callable[[dict[str, dict[str, Method]]], Serving]) -> None:
    serving = serve(version_only())
    with serving.client() as client:
        assert client.version("1.2.3") == "echo 1.2.3"
        assert client.version("again") == "echo again"


def test_client_numbers_streams_with_odd_increasing_ids(sockdir: Path) -> None:
    path = sockdir / "fake.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.settimeout(10)
    seen: list[tuple[Frame, ttrpc_pb2.Request]] = []

    def fake_adaptor() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            for _ in range(3):
                frame = read_frame(conn)
                seen.append((frame, ttrpc_pb2.Request.FromString(frame.data)))
                reply = ttrpc_pb2.Response(payload=pb.VersionResponse(version="v").SerializeToString())
                write_frame(conn, threading.Lock(), Frame(frame.stream_id, 2, 0, reply.SerializeToString()))

    thread = threading.Thread(target=fake_adaptor, daemon=True)
    thread.start()
    try:
        with HypervisorClient(str(path)) as client:
            for timeout in (1.5, 2.0, 600.0):
                assert client.version("x", timeout=timeout) == "v"
        thread.join(10)
    finally:
        listener.close()
    assert [frame.stream_id for frame, _ in seen] == [1, 3, 5]
    assert {(frame.type, frame.flags) for frame, _ in seen} == {(1, 0)}
    assert {(request.service, request.method) for _, request in seen} == {
        ("hypervisor.Hypervisor", "Version")
    }
    assert [request.timeout_nano for _, request in seen] == [1_500_000_000, 2_000_000_000, 600 * 10**9]


def test_success_reply_carries_only_the_payload_field(
    serve: Callable[[dict[str, dict[str, Method]]], Serving],
) -> None:
    serving = serve(version_only())
    with serving.raw() as sock:
        frame = raw_call(sock, 1, version_request_bytes("q"))
    assert (frame.stream_id, frame.type, frame.flags) == (1, 2, 0)
    assert read_fields(frame.data) == [(2, field_bytes(1, "echo q"))]


def test_empty_reply_is_a_zero_byte_frame(serve: Callable[[dict[str, dict[str, Method]]], Serving]) -> None:
    serving = serve({SERVICE: {"StopVM": Method(pb.StopVMRequest, lambda _r: pb.StopVMResponse())}})
    request = ttrpc_pb2.Request(
        service=SERVICE, method="StopVM", payload=pb.StopVMRequest(id="a").SerializeToString()
    )
    with serving.raw() as sock:
        frame = raw_call(sock, 1, request.SerializeToString())
    assert frame.data == b""
    with serving.client() as client:
        client.stop_vm("a")


def test_unknown_service_is_unimplemented(serve: Callable[[dict[str, dict[str, Method]]], Serving]) -> None:
    serving = serve({"other.Service": {"Version": Method(pb.VersionRequest, echo_version)}})
    with serving.client() as client, pytest.raises(RemoteError) as caught:
        client.version("x")
    assert (caught.value.code, caught.value.message) == (12, "service hypervisor.Hypervisor")
    assert caught.value.method == "Version"


def test_unknown_method_is_unimplemented(serve: Callable[[dict[str, dict[str, Method]]], Serving]) -> None:
    serving = serve(version_only())
    with serving.client() as client:
        with pytest.raises(RemoteError) as caught:
            client.stop_vm("x")
        assert (caught.value.code, caught.value.message) == (12, "method StopVM")
        assert client.version("still") == "echo still"


def test_error_reply_carries_only_the_status_field(
    serve: Callable[[dict[str, dict[str, Method]]], Serving],
) -> None:
    serving = serve(version_only())
    request = ttrpc_pb2.Request(service=SERVICE, method="Nope").SerializeToString()
    with serving.raw() as sock:
        frame = raw_call(sock, 1, request)
    fields = read_fields(frame.data)
    assert [number for number, _ in fields] == [1]
    status = fields[0][1]
    assert isinstance(status, bytes)
    assert read_fields(status) == [(1, 12), (2, b"method Nope")]


def test_service_error_keeps_its_code_and_message(
    serve: Callable[[dict[str, dict[str, Method]]], Serving],
) -> None:
    def refuse(request: pb.VersionRequest) -> pb.VersionResponse:
        raise ServiceError(5, f"no such thing as {request.version}")

    serving = serve(version_only(refuse))
    with serving.client() as client, pytest.raises(RemoteError) as caught:
        client.version("widget")
    assert (caught.value.code, caught.value.message) == (5, "no such thing as widget")
    assert "NOT_FOUND" in str(caught.value)


def test_a_handler_crash_is_unknown_as_ttrpc_answers_and_the_server_keeps_serving(
    serve: Callable[[dict[str, dict[str, Method]]], Serving],
) -> None:
    def flaky(request: pb.VersionRequest) -> pb.VersionResponse:
        if request.version == "crash":
            raise RuntimeError("handler blew up")
        return echo_version(request)

    serving = serve(version_only(flaky))
    with serving.client() as client:
        with pytest.raises(RemoteError) as caught:
            client.version("crash")
        assert caught.value.code == Code.UNKNOWN  # ttrpc services.go: an error that is not a status
        assert "handler blew up" in caught.value.message
        assert client.version("next") == "echo next"
    with serving.client() as other:
        assert other.version("new connection") == "echo new connection"


def test_oversized_frame_is_resource_exhausted_and_the_connection_stays_usable(
    serve: Callable[[dict[str, dict[str, Method]]], Serving],
) -> None:
    serving = serve(version_only())
    with serving.raw() as sock:
        sender = send_in_background(sock, header(MAX_DATA + 1, 1, 1, 0) + b"\x00" * (MAX_DATA + 1))
        frame = read_frame(sock)
        sender.join(10)
        assert (frame.stream_id, frame.type) == (1, 2)
        status = ttrpc_pb2.Response.FromString(frame.data).status
        assert status.code == 8
        assert str(MAX_DATA + 1) in status.message
        answer = raw_call(sock, 3, version_request_bytes("after"))
    assert answer.stream_id == 3
    assert (
        pb.VersionResponse.FromString(ttrpc_pb2.Response.FromString(answer.data).payload).version
        == "echo after"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xff\xff",
        ttrpc_pb2.Request(service=SERVICE, method="Version", payload=b"\xff").SerializeToString(),
    ],
    ids=["envelope", "payload"],
)
def test_garbage_request_is_invalid_argument(
    serve: Callable[[dict[str, dict[str, Method]]], Serving], data: bytes
) -> None:
    serving = serve(version_only())
    with serving.raw() as sock:
        frame = raw_call(sock, 1, data)
        assert ttrpc_pb2.Response.FromString(frame.data).status.code == 3
        again = raw_call(sock, 3, version_request_bytes("ok"))
    assert not ttrpc_pb2.Response.FromString(again.data).HasField("status")


def test_client_timeout_names_the_method_and_the_timeout(
    serve: Callable[[dict[str, dict[str, Method]]], Serving],
) -> None:
    release = threading.Event()

    def stuck(request: pb.VersionRequest) -> pb.VersionResponse:
        release.wait(10)
        return echo_version(request)

    serving = serve(version_only(stuck))
    try:
        with serving.client() as client:
            started = time.monotonic()
            with pytest.raises(AdaptorUnreachable) as caught:
                client.version("slow", timeout=0.3)
            elapsed = time.monotonic() - started
    finally:
        release.set()
    assert 0.25 <= elapsed < 5
    assert "Version" in str(caught.value)
    assert "0.3 s" in str(caught.value)
    assert str(serving.path) in str(caught.value)


def test_connecting_to_a_missing_socket_names_the_path(sockdir: Path) -> None:
    path = sockdir / "absent.sock"
    with pytest.raises(AdaptorUnreachable, match=str(path)):
        HypervisorClient(str(path))


def test_client_refuses_a_socket_path_over_107_bytes(sockdir: Path) -> None:
    with pytest.raises(ValueError, match="the adaptor socket"):
        HypervisorClient(str(sockdir / ("x" * 120)))


def test_server_refuses_a_regular_file_and_leaves_it(sockdir: Path) -> None:
    path = sockdir / "file.sock"
    path.write_text("precious\n")
    with pytest.raises(FileExistsError, match=f"{path}.*not a socket"):
        TtrpcServer(path, version_only())
    assert path.read_text() == "precious\n"


def test_server_refuses_a_socket_another_server_listens_on(
    serve: Callable[[dict[str, dict[str, Method]]], Serving],
) -> None:
    first = serve(version_only())
    with pytest.raises(FileExistsError, match=f"{first.path}.*another server is listening"):
        TtrpcServer(first.path, version_only())
    with first.client() as client:
        assert client.version("first") == "echo first"


def test_server_replaces_a_stale_socket_file_and_removes_it_on_shutdown(sockdir: Path) -> None:
    path = sockdir / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()
    assert path.is_socket()
    server = TtrpcServer(path, version_only())
    server.start()
    try:
        with HypervisorClient(str(path)) as client:
            assert client.version("fresh") == "echo fresh"
    finally:
        server.shutdown()
    assert not path.exists()


def test_server_refuses_a_socket_path_over_107_bytes(sockdir: Path) -> None:
    path = sockdir / ("y" * 120)
    with pytest.raises(ValueError, match="--socket"):
        TtrpcServer(path, version_only())
    assert not path.exists()


def test_even_and_reused_stream_ids_are_refused_as_ttrpc_refuses_them(
    serve: Callable[[dict[str, dict[str, Method]]], Serving],
) -> None:
    serving = serve(version_only())
    with serving.raw() as sock:
        even = ttrpc_pb2.Response.FromString(raw_call(sock, 2, version_request_bytes("a")).data)
        assert even.status.code == Code.INVALID_ARGUMENT
        assert "odd" in even.status.message
        first = ttrpc_pb2.Response.FromString(raw_call(sock, 5, version_request_bytes("b")).data)
        assert first.status.code == Code.OK
        again = ttrpc_pb2.Response.FromString(raw_call(sock, 5, version_request_bytes("c")).data)
        assert again.status.code == Code.INVALID_ARGUMENT
        assert "re-used" in again.status.message
        lower = ttrpc_pb2.Response.FromString(raw_call(sock, 3, version_request_bytes("d")).data)
        assert lower.status.code == Code.INVALID_ARGUMENT
        later = ttrpc_pb2.Response.FromString(raw_call(sock, 7, version_request_bytes("e")).data)
        assert later.status.code == Code.OK
