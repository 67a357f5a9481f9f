"""The reference webhook as a real HTTPS process: good reviews, bad input and faults.

Every test talks to ``peerpods-conformance webhook serve`` started as a child process on
loopback (sim.server.launch), over TLS verified against the CA the server wrote. After
each fault, the same server must still answer a valid review correctly.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import http.client
import json
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from plumbum import local

from sim.peerpods.webhook import mutate_pod
from sim.ports import free_port
from sim.processes import terminate
from sim.server.launch import LaunchedServer, launched, serve_command, webhook_server
from sim.server.tls import certificate_identity, certificate_identity_der, load_certificates, self_signed

ROOT = Path(__file__).resolve().parents[2]
REVIEW: dict[str, Any] = json.loads((ROOT / "fixtures" / "webhook" / "review-3k.json").read_text())
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def server() -> Iterator[LaunchedServer]:
    """One server for the module; a short read timeout keeps the slow-client tests quick."""
    with launched(["--read-timeout", "1"]) as running:
        yield running


def review(uid: str = "uid-1", **request: Any) -> dict[str, Any]:
    """The fixture review with a fresh uid and request fields overridden."""
    body = copy.deepcopy(REVIEW)
    body["request"]["uid"] = uid
    body["request"].update(request)
    return body


def post(
    server: LaunchedServer, body: bytes, headers: dict[str, str] | None = None, path: str = "/mutate-v1-pod"
) -> tuple[int, Any]:
    """POST over verified TLS; the answer decoded as JSON when it is JSON."""
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context(), timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers or {"Content-Type": "application/json"})
        answer = conn.getresponse()
        data = answer.read()
    finally:
        conn.close()
    try:
        return answer.status, json.loads(data)
    except ValueError:
        return answer.status, data


def assert_serves_valid_review(server: LaunchedServer) -> None:
    """The server still answers a good review with the reference mutation."""
    sent = review(uid="after-fault")
    status, answer = post(server, json.dumps(sent).encode())
    assert status == 200, answer
    response = answer["response"]
    assert response["uid"] == "after-fault"
    assert response["allowed"] is True
    patch = json.loads(base64.b64decode(response["patch"]))
    pod = sent["request"]["object"]
    assert jsonpatch.apply_patch(pod, patch) == mutate_pod(pod)


def tls_socket(server: LaunchedServer) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return server.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")


def read_head(sock: socket.socket) -> bytes:
    """Bytes until the end of the response head, or until the peer closes."""
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    return data


# --------------------------------------------------------------------------- good reviews


def test_valid_review_is_mutated_with_a_json_patch(server: LaunchedServer) -> None:
    sent = review(uid="705ab4f5-6393-11e8-b7cc-42010a800002")
    status, answer = post(server, json.dumps(sent).encode())
    assert status == 200
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    patched = jsonpatch.apply_patch(
        sent["request"]["object"], json.loads(base64.b64decode(response["patch"]))
    )
    first = patched["spec"]["containers"][0]["resources"]
    assert first == {"requests": {"kata.peerpods.io/vm": "1"}, "limits": {"kata.peerpods.io/vm": "1"}}
    assert patched["metadata"]["annotations"]["io.katacontainers.config.hypervisor.default_vcpus"] == "3"


def test_pod_of_another_runtimeclass_gets_no_patch(server: LaunchedServer) -> None:
    sent = review()
    sent["request"]["object"]["spec"]["runtimeClassName"] = "runc"
    status, answer = post(server, json.dumps(sent).encode())
    assert status == 200
    assert answer["response"]["allowed"] is True
    assert "patch" not in answer["response"]
    assert "patchType" not in answer["response"]


def test_health_and_readiness(server: LaunchedServer) -> None:
    for path in ("/healthz", "/readyz"):
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context(), timeout=5)
        conn.request("GET", path)
        assert conn.getresponse().status == 200
        conn.close()


def test_webhook_server_yields_url_and_ca_and_stops_the_server() -> None:
    with webhook_server() as (url, ca):
        port = int(url.split(":")[2].split("/")[0])
        conn = http.client.HTTPSConnection(
            "127.0.0.1", port, context=ssl.create_default_context(cafile=str(ca)), timeout=5
        )
        conn.request("GET", "/readyz")
        assert conn.getresponse().status == 200
        conn.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_env_and_flags_reach_the_workers() -> None:
    with launched(
        ["--target-runtimeclass", "kata-qemu"], env={"POD_VM_EXTENDED_RESOURCE": "example.com/vm"}
    ) as srv:
        sent = review()
        sent["request"]["object"]["spec"]["runtimeClassName"] = "kata-qemu"
        status, answer = post(srv, json.dumps(sent).encode())
    assert status == 200
    patched = jsonpatch.apply_patch(
        sent["request"]["object"], json.loads(base64.b64decode(answer["response"]["patch"]))
    )
    assert patched["spec"]["containers"][0]["resources"]["requests"] == {"example.com/vm": "1"}


# --------------------------------------------------------------------------- bad input

BAD_BODIES: list[tuple[str, bytes, str]] = [
    ("not JSON", b"this is not json", "not JSON"),
    ("empty body", b"", "empty"),
    ("JSON array", b"[1, 2]", "JSON array"),
    ("JSON string", b'"AdmissionReview"', "JSON string"),
    (
        "wrong apiVersion",
        json.dumps({**REVIEW, "apiVersion": "admission.k8s.io/v1beta1"}).encode(),
        "apiVersion",
    ),
    ("wrong kind", json.dumps({**REVIEW, "kind": "Pod"}).encode(), "kind"),
    (
        "no request",
        json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
        "request",
    ),
    ("request not an object", json.dumps({**REVIEW, "request": [1]}).encode(), "request"),
    ("no uid", json.dumps({**REVIEW, "request": {"object": {}}}).encode(), "uid"),
    ("uid not a string", json.dumps({**REVIEW, "request": {"uid": 7}}).encode(), "uid"),
]


@pytest.mark.parametrize(
    ("body", "named"), [(b, n) for _, b, n in BAD_BODIES], ids=[i for i, _, _ in BAD_BODIES]
)
def test_bad_envelope_is_a_400_naming_the_problem(server: LaunchedServer, body: bytes, named: str) -> None:
    status, answer = post(server, body)
    assert status == 400
    assert answer["kind"] == "Status"
    assert answer["code"] == 400
    assert named.lower() in answer["message"].lower()
    assert_serves_valid_review(server)


@pytest.mark.parametrize(
    ("obj", "named"),
    [
        (None, "missing"),
        ({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}}, "Service"),
        ([1, 2, 3], "list"),
        ({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": "nope"}}, "containers"),
    ],
    ids=["object missing", "a Service", "a JSON array", "containers not a list"],
)
def test_object_that_is_not_a_pod_is_refused_in_the_review(
    server: LaunchedServer, obj: Any, named: str
) -> None:
    sent = review(uid="bad-object")
    if obj is None:
        del sent["request"]["object"]
    else:
        sent["request"]["object"] = obj
    status, answer = post(server, json.dumps(sent).encode())
    assert status == 200, answer
    response = answer["response"]
    assert response["uid"] == "bad-object"
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    assert named in response["status"]["message"]
    assert_serves_valid_review(server)


def test_wrong_method_path_and_media_type(server: LaunchedServer) -> None:
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context(), timeout=5)
    conn.request("GET", "/mutate-v1-pod")
    assert conn.getresponse().status == 405
    conn.close()
    assert post(server, b"{}", path="/validate")[0] == 404
    assert post(server, json.dumps(REVIEW).encode(), headers={"Content-Type": "text/plain"})[0] == 415
    assert_serves_valid_review(server)


# --------------------------------------------------------------------------- size limit


def test_declared_body_over_3_mib_is_refused_before_it_is_sent(server: LaunchedServer) -> None:
    with tls_socket(server) as sock:
        head = (
            "POST /mutate-v1-pod HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {3 * MiB + 1}\r\n\r\n"
        )
        sock.sendall(head.encode() + b"{" + b" " * 1000)  # far less than announced
        answer = read_head(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert_serves_valid_review(server)


def test_chunked_body_is_cut_off_once_it_crosses_3_mib(server: LaunchedServer) -> None:
    chunk = b" " * (256 * 1024)
    sent = 0
    with tls_socket(server) as sock:
        head = (
            "POST /mutate-v1-pod HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head.encode())
        try:
            while sent < 8 * MiB:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
        except OSError:
            pass  # the server stopped reading: what we want
        answer = read_head(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert_serves_valid_review(server)


def test_body_just_under_the_limit_is_read(server: LaunchedServer) -> None:
    sent = review(uid="big")
    sent["request"]["object"]["metadata"]["annotations"]["padding"] = "x" * (3 * MiB - 10_000)
    body = json.dumps(sent).encode()
    assert len(body) < 3 * MiB
    status, answer = post(server, body)
    assert status == 200
    assert answer["response"]["uid"] == "big"


# --------------------------------------------------------------------------- transport faults


def test_plaintext_http_gets_no_http_answer(server: LaunchedServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /mutate-v1-pod HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        try:
            data = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            data = b""
    assert not data.startswith(b"HTTP/")
    assert_serves_valid_review(server)


def test_tls_below_the_minimum_is_refused(server: LaunchedServer) -> None:
    context = server.ssl_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        pytest.raises(ssl.SSLError),
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
    assert_serves_valid_review(server)


def test_tls_1_2_is_accepted_when_the_minimum_says_so() -> None:
    with launched(["--tls-min-version", "1.2"]) as srv:
        context = srv.ssl_context()
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        with (
            socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() == "TLSv1.2"


def test_client_trusting_another_ca_fails_verification(server: LaunchedServer) -> None:
    context = ssl.create_default_context()  # the system CAs, not the server's
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_slow_headers_do_not_hold_the_server(server: LaunchedServer) -> None:
    with tls_socket(server) as slow:
        slow.sendall(b"POST /mutate-v1-pod HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and then nothing
        assert_serves_valid_review(server)  # others are served meanwhile
        started = time.monotonic()
        answer = read_head(slow)  # the server gives up on us (read timeout 1 s)
        waited = time.monotonic() - started
    assert not answer.startswith(b"HTTP/1.1 2"), answer
    assert waited < 8


def test_slow_body_is_timed_out(server: LaunchedServer) -> None:
    with tls_socket(server) as slow:
        slow.sendall(
            b"POST /mutate-v1-pod HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 5000\r\n\r\n{"apiVersion"'
        )
        assert_serves_valid_review(server)
        started = time.monotonic()
        answer = read_head(slow)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert waited < 8
    assert_serves_valid_review(server)


def test_client_leaving_mid_body_is_no_server_error(server: LaunchedServer) -> None:
    for _ in range(3):
        with tls_socket(server) as sock:
            sock.sendall(
                b"POST /mutate-v1-pod HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b'Content-Length: 5000\r\n\r\n{"apiVersion"'
            )
            time.sleep(0.1)
    time.sleep(0.3)
    assert "Traceback" not in server.log_text()
    assert_serves_valid_review(server)


def test_sigterm_lets_the_in_flight_review_finish() -> None:
    body = json.dumps(review(uid="in-flight")).encode()
    with launched() as srv:
        with tls_socket(srv) as sock:
            head = (
                "POST /mutate-v1-pod HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode() + body[:100])
            time.sleep(0.3)  # the request is being served
            srv.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            sock.sendall(body[100:])
            answer = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
                if b"\r\n\r\n" in answer and answer.endswith(b"}"):
                    break
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert b'"uid":"in-flight"' in answer
        assert srv.process.wait(20) == 0


# --------------------------------------------------------------------------- idle connections
# The figures (2,000 idle connections, the review latency meanwhile, the deadlines under the
# default 10 s) are measured by benchmarks/bench_bounds.py; these tests pin the behaviour.


def closed_by_server(sock: ssl.SSLSocket, within: float) -> bool:
    """True when the server closes ``sock`` (which sends nothing) within ``within`` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True  # reset: closed as well


def test_tls_connection_that_sends_nothing_is_closed(server: LaunchedServer) -> None:
    # issue 11: such a connection used to be held for ever, a step towards locking everyone out
    with tls_socket(server) as silent:
        assert closed_by_server(silent, within=15), "a silent TLS connection was never closed"
    assert_serves_valid_review(server)


def test_idle_keep_alive_connection_is_closed(server: LaunchedServer) -> None:
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context(), timeout=10)
    try:
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() is not None
        assert conn.sock is not None
        assert closed_by_server(conn.sock, within=15), "an idle keep-alive connection was never closed"
    finally:
        conn.close()


def test_alpn_offers_http_1_1_only(server: LaunchedServer) -> None:
    context = server.ssl_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"


def open_silent(server: LaunchedServer, count: int) -> list[ssl.SSLSocket]:
    sockets: list[ssl.SSLSocket] = []
    try:
        for _ in range(count):
            sockets.append(tls_socket(server))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def test_idle_connections_held_do_not_starve_a_review() -> None:
    # a read timeout long enough that none of the idle connections is closed meanwhile:
    # the review is answered because the connection limit is far above their number
    with launched(["--read-timeout", "60"]) as srv:
        idle = open_silent(srv, 300)
        try:
            assert_serves_valid_review(srv)
            for sock in idle:  # all still held by the server when the review was answered
                sock.setblocking(False)
                with pytest.raises(ssl.SSLWantReadError):
                    sock.recv(1)
        finally:
            for sock in idle:
                sock.close()


def test_connections_past_the_limit_wait_until_idle_ones_are_closed() -> None:
    with launched(["--read-timeout", "1", "--max-connections", "16"]) as srv:
        idle = open_silent(srv, 16)  # the worker's whole allowance
        try:
            started = time.monotonic()
            assert_serves_valid_review(srv)  # queued until the deadline frees a slot
            waited = time.monotonic() - started
            assert all(closed_by_server(sock, within=5) for sock in idle)
        finally:
            for sock in idle:
                sock.close()
    assert waited < 10


# --------------------------------------------------------------------------- issue 19


def wide_review(containers: int) -> bytes:
    """A review of a peer pod with ``containers`` empty containers (1,000,000 fill 3.0 MB)."""
    head = (
        b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"wide",'
        b'"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"wide"},'
        b'"spec":{"runtimeClassName":"kata-remote","containers":['
    )
    return head + b",".join([b"{}"] * containers) + b"]}}}}"


def test_a_million_containers_are_refused_while_readyz_keeps_answering(server: LaunchedServer) -> None:
    # issue 19: 17 s and an 89 MB answer for one review, /readyz waiting 16 s behind it
    waits: list[float] = []
    done = threading.Event()

    def probe() -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context(), timeout=30)
        while not done.is_set():
            started = time.monotonic()
            conn.request("GET", "/readyz")
            conn.getresponse().read()
            waits.append(time.monotonic() - started)
            time.sleep(0.05)
        conn.close()

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        started = time.monotonic()
        status, answer = post(server, wide_review(1_000_000))
        took = time.monotonic() - started
    finally:
        done.set()
        prober.join()
    assert status == 200
    assert answer["response"]["allowed"] is False and answer["response"]["status"]["code"] == 400
    assert "1,000,000 containers" in answer["response"]["status"]["message"]
    assert took < 3.0, f"the refusal took {took:.1f} s"
    assert waits and max(waits) < 3.0, f"/readyz waited {max(waits):.1f} s"
    assert_serves_valid_review(server)


def server_side_connections(port: int) -> int:
    """ESTABLISHED TCP connections whose local port is ``port`` (the server's ends)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                count += 1
    return count


def test_a_client_that_never_reads_is_cut_off_after_the_write_deadline() -> None:
    # issue 19: 4 such clients were still connected after 70 s, pinning 110 MiB
    with launched(["--write-timeout", "2"]) as srv:
        body = wide_review(10_000)  # the largest answer the server gives (~900 KB)
        request = (
            b"POST /mutate-v1-pod HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", srv.port))
        with srv.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as sock:

            def send() -> None:
                with contextlib.suppress(OSError):
                    for _ in range(20):
                        sock.sendall(request)

            threading.Thread(target=send, daemon=True).start()
            time.sleep(1)
            assert server_side_connections(srv.port) >= 1
            deadline = time.monotonic() + 20
            while server_side_connections(srv.port) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert server_side_connections(srv.port) == 0, "the server still holds the unread connection"
        assert_serves_valid_review(srv)


def test_sighup_with_a_bad_pair_keeps_serving_and_a_good_pair_is_taken_up(tmp_path: Path) -> None:
    # issue 19: `mv cert.pem x; kill -HUP` made every worker panic and the server exit 1
    first = self_signed(tmp_path / "a", ["127.0.0.1"], tmp_path / "ca-a.pem")
    second = self_signed(tmp_path / "b", ["127.0.0.1"], tmp_path / "ca-b.pem")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(first.cert, cert)
    shutil.copy(first.key, key)
    port = free_port()
    program, *args = serve_command()
    args += ["webhook", "serve", "--port", str(port), "--cert", str(cert), "--key", str(key)]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = local[program][args].popen(stdout=out, stderr=subprocess.STDOUT)
    try:

        def fingerprint() -> str | None:
            """The served certificate's fingerprint, verified against either CA (both have one name)."""
            for ca in ("ca-a.pem", "ca-b.pem"):
                context = ssl.create_default_context(cafile=str(tmp_path / ca))
                try:
                    with (
                        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                        context.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
                    ):
                        der = sock.getpeercert(binary_form=True)
                        return certificate_identity_der(der)["sha256"] if der else None
                except OSError:
                    continue
            return None

        deadline = time.monotonic() + 30
        while fingerprint() is None:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        old = fingerprint()
        moved = tmp_path / "moved.crt"
        cert.rename(moved)  # missing
        proc.send_signal(signal.SIGHUP)
        time.sleep(6)
        assert proc.poll() is None, log.read_text()
        assert fingerprint() == old
        cert.write_bytes(moved.read_bytes()[:300])  # partial
        proc.send_signal(signal.SIGHUP)
        time.sleep(6)
        shutil.copy(second.key, key)  # mismatched: the old certificate, the new key
        cert.write_bytes(moved.read_bytes())
        proc.send_signal(signal.SIGHUP)
        time.sleep(6)
        assert proc.poll() is None and fingerprint() == old
        shutil.copy(second.cert, cert)  # a good pair
        proc.send_signal(signal.SIGHUP)
        # granian starts the new worker before it stops the old one: for a moment both answer
        new = certificate_identity(load_certificates(second.cert)[0])["sha256"]
        deadline, in_a_row = time.monotonic() + 60, 0
        while in_a_row < 3 and time.monotonic() < deadline:
            in_a_row = in_a_row + 1 if fingerprint() == new else 0
            time.sleep(0.5)
        assert in_a_row == 3, f"the new certificate is not served alone: {fingerprint()} (old {old})"
        lines = [line for line in log.read_text().splitlines() if "SIGHUP" in line]
        assert len(lines) == 4, lines
        assert "tls.crt" in lines[0] and "No such file" in lines[0]
        assert "tls.crt" in lines[1] and "not a PEM certificate" in lines[1]
        assert "tls.key" in lines[2] and "does not belong" in lines[2]
        assert "serving certificate" in lines[3]
        assert "panicked" not in log.read_text()
    finally:
        terminate(proc, 20)
