"""The ``webhook`` target against the live reference server, and against misbehaving endpoints.

The reference server runs as a real child process (sim.server.launch); the misbehaving
endpoints are small in-test TLS servers (FakeEndpoint) that answer wrongly on purpose,
since the reference server never does. Each failure must reach the scenario as a denial
naming the reason, and the next pod must be handled normally.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from sim.errors import ConformanceInputError
from sim.harness.targets.base import (
    Guests,
    Lacking,
    LparInspection,
    Nodes,
    NotApplicable,
    PodVMs,
    TargetOptions,
    WebhookCalls,
    WebhookEnv,
    need,
)
from sim.harness.targets.webhook import WebhookEnvironment, WebhookTarget
from sim.server.launch import LaunchedServer, launched

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "fixtures" / "webhook" / "mwc-create-update.yaml"
VM = "kata.peerpods.io/vm"


@pytest.fixture(scope="module")
def server() -> Iterator[LaunchedServer]:
    with launched() as running:
        yield running


@pytest.fixture
def env(server: LaunchedServer) -> Iterator[WebhookEnvironment]:
    target = WebhookTarget(server.url, server.ca, CONFIG)
    environment = target.open_environment()
    yield environment
    environment.close()


def peer_pod(
    name: str = "peer", namespace: str = "workloads", runtime_class: str = "kata-remote"
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "runtimeClassName": runtime_class,
            "containers": [
                {
                    "name": "app",
                    "image": "busybox",
                    "resources": {
                        "requests": {"cpu": "1", "memory": "1Gi"},
                        "limits": {"cpu": "2", "memory": "2Gi"},
                    },
                }
            ],
        },
    }


# --------------------------------------------------------------------------- the live reference server


def test_peer_pod_is_mutated_over_https(env: WebhookEnvironment) -> None:
    env.create_namespace("workloads")
    outcome = env.create_pod(peer_pod())
    assert outcome.admitted, outcome.denial
    assert outcome.pod is not None
    assert outcome.pod["spec"]["containers"][0]["resources"] == {"requests": {VM: "1"}, "limits": {VM: "1"}}
    annotations = outcome.pod["metadata"]["annotations"]
    assert annotations["io.katacontainers.config.hypervisor.default_vcpus"] == "2"
    assert annotations["io.katacontainers.config.hypervisor.default_memory"] == "2048"
    assert env.get_pod("workloads", "peer") == outcome


def test_excluded_namespace_is_not_sent_to_the_endpoint(env: WebhookEnvironment) -> None:
    env.create_namespace("kube-system")
    outcome = env.create_pod(peer_pod(namespace="kube-system"))
    assert outcome.admitted
    assert outcome.pod is not None
    assert outcome.pod["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}


def test_update_is_sent_where_the_configuration_registers_it(env: WebhookEnvironment) -> None:
    env.create_pod(peer_pod(runtime_class="runc"))
    outcome = env.create_pod(peer_pod(), operation="UPDATE")
    assert outcome.admitted, outcome.denial
    assert outcome.pod is not None
    assert outcome.pod["spec"]["containers"][0]["resources"]["limits"] == {VM: "1"}


def test_other_runtime_class_is_left_alone(env: WebhookEnvironment) -> None:
    outcome = env.create_pod(peer_pod(runtime_class="kata"))
    assert outcome.admitted
    assert outcome.pod is not None
    assert outcome.pod["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}


def test_nodes_and_vms_are_not_applicable(env: WebhookEnvironment) -> None:
    for interface in (Nodes, PodVMs, WebhookEnv, LparInspection, Guests):
        with pytest.raises(Lacking, match=r"^needs [a-z-]+ \("):
            need(env, interface)
    assert need(env, WebhookCalls) is env
    with pytest.raises(NotApplicable):
        env.use_sizing_annotations(False)


def test_identity_names_url_and_certificate(server: LaunchedServer) -> None:
    target = WebhookTarget(server.url, server.ca, CONFIG)
    ident = target.identity()
    assert ident["url"] == server.url
    assert ident["certificate_subject"] == "CN=127.0.0.1"
    assert len(ident["certificate_sha256"].split(":")) == 32
    assert target.capabilities == frozenset({"mutation"})


def test_unreachable_endpoint_denies_with_the_reason(env: WebhookEnvironment) -> None:
    env.make_webhook_unreachable()
    outcome = env.create_pod(peer_pod())
    assert not outcome.admitted
    assert outcome.denial is not None
    assert "connection refused" in outcome.denial


def test_unreachable_endpoint_under_ignore_admits_unmutated(server: LaunchedServer) -> None:
    env = WebhookTarget(server.url, server.ca, CONFIG).open_environment()
    env.make_webhook_unreachable()
    env._webhooks = [w.__class__(**{**w.__dict__, "failure_policy": "Ignore"}) for w in env._webhooks]
    outcome = env.create_pod(peer_pod())
    assert outcome.admitted
    assert outcome.pod is not None
    assert outcome.pod["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}


def test_wrong_ca_is_a_tls_failure_and_the_run_goes_on(server: LaunchedServer, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    wrong = WebhookTarget(server.url, other_ca, CONFIG).open_environment()
    outcome = wrong.create_pod(peer_pod())
    assert not outcome.admitted
    assert outcome.denial is not None
    assert "TLS failure" in outcome.denial
    assert "certificate verify failed" in outcome.denial
    right = WebhookTarget(server.url, server.ca, CONFIG).open_environment()
    assert right.create_pod(peer_pod()).admitted


def test_bad_options_are_input_errors(server: LaunchedServer, tmp_path: Path) -> None:
    with pytest.raises(ConformanceInputError, match="--webhook-url"):
        WebhookTarget.from_options(TargetOptions())
    with pytest.raises(ConformanceInputError, match="https"):
        WebhookTarget.from_options(TargetOptions(webhook_url="http://127.0.0.1:1/x", webhook_config=CONFIG))
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello")
    with pytest.raises(ConformanceInputError, match=r"ca\.pem"):
        WebhookTarget.from_options(
            TargetOptions(webhook_url=server.url, webhook_ca=not_pem, webhook_config=CONFIG)
        )
    with pytest.raises(ConformanceInputError, match="timeout"):
        WebhookTarget.from_options(
            TargetOptions(webhook_url=server.url, webhook_config=CONFIG, extra={"webhook_timeout": "soon"})
        )


# --------------------------------------------------------------------------- misbehaving endpoints

Responder = Callable[[http.server.BaseHTTPRequestHandler, dict[str, Any]], None]


class _QuietServer(http.server.ThreadingHTTPServer):
    """Joins its handler threads on close, so a slow handler cannot outlive its test, and
    stays quiet when the client under test has already given up (the timeout cases)."""

    daemon_threads = False  # server_close() waits for the handlers (block_on_close)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class FakeEndpoint:
    """A Fake AdmissionReview endpoint over TLS whose answers the test chooses (to misbehave)."""

    def __init__(self, respond: Responder) -> None:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                respond(self, review)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.ca_pem = ca.cert_pem
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.httpd.server_address[1]}/mutate-v1-pod"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def reply_with(status: int, body: bytes) -> Responder:
    def respond(handler: http.server.BaseHTTPRequestHandler, review: dict[str, Any]) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


def answer(review: dict[str, Any], **response: Any) -> bytes:
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": review["request"]["uid"], "allowed": True, **response},
        }
    ).encode()


def reply_review(**response: Any) -> Responder:
    def respond(handler: http.server.BaseHTTPRequestHandler, review: dict[str, Any]) -> None:
        reply_with(200, answer(review, **response))(handler, review)

    return respond


def slow(handler: http.server.BaseHTTPRequestHandler, review: dict[str, Any]) -> None:
    time.sleep(2)
    reply_review()(handler, review)


def trickle(handler: http.server.BaseHTTPRequestHandler, review: dict[str, Any]) -> None:
    """A byte every 0.1 s: each read is quick, only a deadline for the whole call stops it."""
    body = answer(review)
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    for index in range(len(body)):
        try:
            handler.wfile.write(body[index : index + 1])
            handler.wfile.flush()
        except OSError:
            return
        time.sleep(0.1)


def oversized(handler: http.server.BaseHTTPRequestHandler, review: dict[str, Any]) -> None:
    """A reply over the 3 MiB bound, without a Content-Length (read until the bound trips)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Connection", "close")
    handler.end_headers()
    with contextlib.suppress(OSError):
        handler.wfile.write(b" " * (4 << 20))


@pytest.mark.parametrize(
    ("respond", "named"),
    [
        (reply_with(200, b"<html>not json</html>"), "not JSON"),
        (reply_with(500, b"boom"), "HTTP 500"),
        (reply_with(200, b"[]"), "not an AdmissionReview"),
        (lambda h, r: reply_with(200, answer(r, uid="someone-else"))(h, r), "uid"),
        (reply_review(patchType="JSONPatch", patch="%%% not base64 %%%"), "base64"),
        (reply_review(patch="W10="), "patchType"),
        (lambda h, r: reply_with(200, answer(r, allowed="yes"))(h, r), "allowed"),
        (slow, "timeout"),
        (trickle, "one deadline"),
        (oversized, "3 MiB bound"),
        (reply_with(200, b" " * (3 << 20) + b" "), "3 MiB bound"),
    ],
    ids=[
        "not JSON",
        "HTTP 500",
        "JSON array",
        "wrong uid",
        "patch not base64",
        "no patchType",
        "allowed not bool",
        "timeout",
        "trickling reply",
        "oversized reply",
        "declared length over the bound",
    ],
)
def test_misbehaving_endpoint_fails_the_pod_with_the_reason(
    respond: Responder, named: str, tmp_path: Path
) -> None:
    fake = FakeEndpoint(respond)
    try:
        ca = tmp_path / "ca.pem"
        fake.ca_pem.write_to_path(str(ca))
        target = WebhookTarget(fake.url, ca, CONFIG, timeout=0.5)
        env = target.open_environment()
        outcome = env.create_pod(peer_pod())
        assert not outcome.admitted
        assert outcome.denial is not None
        assert named in outcome.denial
        assert fake.url in outcome.denial
    finally:
        fake.close()


def test_timeout_comes_from_the_environment(server: LaunchedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEERPODS_WEBHOOK_TIMEOUT", "0.5")
    options = TargetOptions(webhook_url=server.url, webhook_ca=server.ca, webhook_config=CONFIG)
    assert WebhookTarget.from_options(options).caller.timeout == 0.5
    monkeypatch.setenv("PEERPODS_WEBHOOK_TIMEOUT", "0")
    with pytest.raises(ConformanceInputError, match="PEERPODS_WEBHOOK_TIMEOUT"):
        WebhookTarget.from_options(options)


def test_default_timeout_is_kube_apiservers_ten_seconds(server: LaunchedServer) -> None:
    target = WebhookTarget(server.url, server.ca, CONFIG)
    assert target.caller.timeout is None
    assert all(w.timeout_seconds == 10 for w in target.webhooks)
