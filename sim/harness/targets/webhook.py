"""The ``webhook`` target: the suite's mutation scenarios against any AdmissionReview endpoint.

kube-apiserver's side is played by the suite: it evaluates the
MutatingWebhookConfiguration's rules and selectors itself (:mod:`sim.kube.admission`), sends an
AdmissionReview v1 over HTTPS exactly as the API server would (``?timeout=`` query, JSON
body, the webhook's ``timeoutSeconds``), checks the reply as the API server does and
applies the returned patch. Pods are kept in a plain store; nothing is scheduled, so
every scenario needing nodes, pod VMs or a guest is not applicable here, and the
endpoint's own environment cannot be changed from the suite (no ``webhook-settings``).

What kube-apiserver decides from the registration (namespace exclusion, the operations,
reinvocation) is judged only on the configuration the user deploys (``--webhook-config``),
against its profile (``--profile`` or detected); without it those scenarios are not
applicable. Every review sent is recorded, so a scenario can say what the endpoint received.

Failures of the endpoint (unreachable, TLS, timeout, malformed reply) become
:class:`sim.kube.admission.WebhookCallError` with the reason, which admission turns into a
denial (failurePolicy Fail) or an unmutated pod (Ignore): one scenario fails with that
reason, and the run goes on.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.client
import json
import os
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from sim.bounds import MAX_REPLY_BYTES, format_size, read_text_bounded
from sim.errors import ConformanceInputError
from sim.harness.targets.base import (
    Environment,
    NotApplicable,
    PodOutcome,
    Target,
    TargetOptions,
    WebhookCalls,
)
from sim.kube import profiles
from sim.kube.admission import (
    MutatingWebhook,
    PeerPodNamespacePolicy,
    RecordingCaller,
    SidecarInjector,
    WebhookCallError,
    admit,
    load_webhook_configuration,
    sidecar_webhook,
)
from sim.peerpods.webhook import WebhookSettings
from sim.server.tls import certificate_identity_der, load_certificates

#: What kube-apiserver waits for a webhook when the configuration does not say.
DEFAULT_TIMEOUT_S = 10.0
#: Overrides every webhook's timeoutSeconds for the run (tests of slow endpoints, CI).
TIMEOUT_ENV = "PEERPODS_WEBHOOK_TIMEOUT"
#: The identity the suite submits pods as (a human user, as ``kubectl apply`` would).
USER_INFO: dict[str, Any] = {"username": "conformance-user", "groups": ["system:authenticated"]}
#: An address nothing listens on: "the webhook is unreachable" is made real, not faked.
UNREACHABLE_URL = "https://127.0.0.1:1/mutate-v1-pod"
ADMISSION_V1 = "admission.k8s.io/v1"
NAME_LABEL = "kubernetes.io/metadata.name"
#: The configuration profiles a deployed MutatingWebhookConfiguration can be judged against.
PROFILE_NAMES = ("caa-chart", "openshift")


class HttpsWebhookCaller:
    """Sends AdmissionReviews to one HTTPS endpoint as kube-apiserver does.

    The reply is held to kube-apiserver's rules (status 200, AdmissionReview v1, the same
    uid, ``allowed`` a boolean, a ``JSONPatch`` patch that is base64 of a JSON array);
    anything else is a :class:`WebhookCallError` naming what was wrong.
    """

    def __init__(self, url: str, ca: Path | None, timeout: float | None = None) -> None:
        try:
            parsed = urllib.parse.urlsplit(url)
            port = parsed.port
        except ValueError as exc:  # a port outside 0-65535, an unclosed [IPv6 literal
            raise ConformanceInputError(f"--webhook-url {url!r}: not a valid URL: {exc}") from None
        if parsed.scheme != "https" or not parsed.hostname:
            raise ConformanceInputError(f"--webhook-url {url!r}: kube-apiserver only calls https:// URLs")
        if port == 0:
            raise ConformanceInputError(f"--webhook-url {url!r}: port 0 is not a TCP port to call")
        self.url = url
        self.host = parsed.hostname
        self.port = port or 443
        self.path = parsed.path or "/"
        self.query = parsed.query
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=str(ca) if ca else None)

    def _target(self, timeout: float) -> str:
        query = f"timeout={timeout:g}s"
        return f"{self.path}?{self.query}&{query}" if self.query else f"{self.path}?{query}"

    def __call__(self, webhook: MutatingWebhook, review: dict[str, Any]) -> dict[str, Any]:
        return self.call_with_body(webhook, review, json.dumps(review, separators=(",", ":")).encode())

    def call_with_body(self, webhook: MutatingWebhook, review: dict[str, Any], body: bytes) -> dict[str, Any]:
        """Send ``review`` as the given bytes (the differential test spells some values itself)."""
        timeout = (
            self.timeout if self.timeout is not None else float(webhook.timeout_seconds or DEFAULT_TIMEOUT_S)
        )
        where = f"Post {self.url!r}"  # admission prefixes the webhook's name, as kube-apiserver
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=timeout)
        deadline = _Deadline(timeout)
        try:
            status, data = self._exchange(conn, deadline, timeout, body, where)
        except (OSError, http.client.HTTPException) as exc:
            if deadline.expired():
                raise WebhookCallError(
                    f"{where}: no complete answer within {timeout:g} s "
                    "(timeout: one deadline for connect, TLS, send and receive)"
                ) from None
            raise self._failure(where, exc, timeout) from None
        finally:
            deadline.cancel()
            conn.close()
        return check_reply(where, review, status, data)

    def _exchange(
        self, conn: http.client.HTTPSConnection, deadline: _Deadline, timeout: float, body: bytes, where: str
    ) -> tuple[int, bytes]:
        """Connect, send, and read a reply of at most MAX_REPLY_BYTES."""
        raw = socket.create_connection((self.host, self.port), timeout=timeout)
        deadline.watch(raw)  # the timer can now cut a trickling handshake too
        conn.sock = self.context.wrap_socket(raw, server_hostname=self.host)
        conn.request(
            "POST",
            self._target(timeout),
            body=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        reply = conn.getresponse()
        bound = format_size(MAX_REPLY_BYTES)
        declared = reply.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_REPLY_BYTES:
            raise WebhookCallError(f"{where}: reply of {int(declared):,} bytes exceeds the {bound} bound")
        data = reply.read(MAX_REPLY_BYTES + 1)
        if deadline.expired():  # the shutdown ended the read early: what arrived is incomplete
            raise TimeoutError("deadline")
        if len(data) > MAX_REPLY_BYTES:
            raise WebhookCallError(f"{where}: reply exceeds the {bound} bound")
        return reply.status, data

    def _failure(self, where: str, exc: Exception, timeout: float) -> WebhookCallError:
        """The reason a call failed, as kube-apiserver would report it."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            return WebhookCallError(
                f"{where}: TLS failure: certificate verify failed: {exc.verify_message or exc.reason} "
                "(does --webhook-ca hold the CA that signed the endpoint's certificate?)"
            )
        if isinstance(exc, ssl.SSLError):
            return WebhookCallError(f"{where}: TLS failure: {exc.reason or exc}")
        if isinstance(exc, TimeoutError):
            return WebhookCallError(f"{where}: no answer within {timeout:g} s (timeout)")
        if isinstance(exc, ConnectionRefusedError):
            return WebhookCallError(f"{where}: connection refused (is the endpoint up?)")
        if isinstance(exc, socket.gaierror):
            return WebhookCallError(f"{where}: cannot resolve {self.host!r}: {exc.strerror}")
        if isinstance(exc, http.client.HTTPException):
            return WebhookCallError(f"{where}: malformed HTTP reply: {type(exc).__name__}: {exc}")
        if isinstance(exc, OSError):
            return WebhookCallError(f"{where}: endpoint unreachable: {exc.strerror or exc}")
        return WebhookCallError(f"{where}: {exc}")  # pragma: no cover

    def _connect(self, conn: http.client.HTTPSConnection, deadline: _Deadline, timeout: float) -> None:
        """TCP then TLS, under the call's one deadline (the timer can cut a trickling handshake)."""
        raw = socket.create_connection((self.host, self.port), timeout=timeout)
        deadline.watch(raw)
        conn.sock = self.context.wrap_socket(raw, server_hostname=self.host)


class _Deadline:
    """One deadline for a whole call: when it passes, the connection is shut down.

    A socket timeout applies to each read and write on its own, so an endpoint sending a
    byte a second never trips it; shutting the socket down interrupts whatever step the
    call is in (handshake, send, headers, body), and the caller reports the deadline.
    """

    def __init__(self, timeout: float) -> None:
        self._expired = threading.Event()
        self._socket: socket.socket | None = None
        self._timer = threading.Timer(timeout, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        """Shut down (a duplicate of) ``sock`` at the deadline; TLS wrapping takes the original over."""
        self._socket = sock.dup()
        if self._expired.is_set():
            self._expire()

    def _expire(self) -> None:
        self._expired.set()
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)

    def expired(self) -> bool:
        return self._expired.is_set()

    def cancel(self) -> None:
        self._timer.cancel()
        if self._socket is not None:
            self._socket.close()


def _snippet(data: bytes) -> str:
    text = data[:200].decode("utf-8", "replace")
    return text + ("..." if len(data) > 200 else "")


def check_reply(where: str, review: Mapping[str, Any], status: int, data: bytes) -> dict[str, Any]:
    """Hold an endpoint's reply to kube-apiserver's rules; return it when it passes."""
    if status != 200:
        raise WebhookCallError(f"{where}: HTTP {status}: {_snippet(data)}")
    try:
        answer = json.loads(data)
    except ValueError as exc:
        raise WebhookCallError(f"{where}: malformed reply: not JSON ({exc}): {_snippet(data)}") from None
    if not isinstance(answer, dict):
        raise WebhookCallError(
            f"{where}: malformed reply: a JSON {type(answer).__name__}, not an AdmissionReview"
        )
    if answer.get("apiVersion") != ADMISSION_V1 or answer.get("kind") != "AdmissionReview":
        raise WebhookCallError(
            f"{where}: malformed reply: apiVersion/kind {answer.get('apiVersion')!r}/{answer.get('kind')!r}, "
            f"expected {ADMISSION_V1}/AdmissionReview"
        )
    response = answer.get("response")
    if not isinstance(response, dict):
        raise WebhookCallError(f"{where}: malformed reply: no response object")
    sent_uid = review["request"]["uid"]
    if response.get("uid") != sent_uid:
        raise WebhookCallError(
            f"{where}: malformed reply: uid {response.get('uid')!r}, expected {sent_uid!r}"
        )
    if not isinstance(response.get("allowed"), bool):
        raise WebhookCallError(f"{where}: malformed reply: response.allowed is not a boolean")
    if "patch" in response:
        if response.get("patchType") != "JSONPatch":
            raise WebhookCallError(
                f"{where}: malformed reply: patchType {response.get('patchType')!r}, expected 'JSONPatch'"
            )
        try:
            ops = json.loads(base64.b64decode(response["patch"], validate=True))
        except (binascii.Error, ValueError, TypeError) as exc:
            raise WebhookCallError(f"{where}: malformed reply: patch is not base64 JSON ({exc})") from None
        if not isinstance(ops, list):
            raise WebhookCallError(f"{where}: malformed reply: patch is not a JSON array of operations")
    return answer


def namespace_object(name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A Namespace as the API server stores it, with its immutable name label."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {**(labels or {}), "kubernetes.io/metadata.name": name}},
    }


class WebhookEnvironment(Environment, WebhookCalls):
    """One scenario against the endpoint: namespaces and pods kept by the suite."""

    def __init__(self, target: WebhookTarget) -> None:
        self._target = target
        self._caller = RecordingCaller(target.caller)
        self._webhooks = list(target.webhooks)
        self._namespaces: dict[str, dict[str, Any]] = {}
        self._pods: dict[tuple[str, str], PodOutcome] = {}
        self._policy: PeerPodNamespacePolicy | None = None

    # --- configuration -------------------------------------------------------------------
    def use_webhook_profile(self, profile: str, *, failure_policy: str | None = None) -> None:
        webhooks = self._target.profile(profile)
        if failure_policy is not None:
            webhooks = [replace(w, failure_policy=failure_policy) for w in webhooks]
        self._webhooks = webhooks

    def use_deployment_profile(self, profile: str) -> None:
        """Only the registration is the suite's to choose; the endpoint is as deployed."""
        self.use_webhook_profile(profile)

    def use_webhook_configuration(self, path: Path) -> None:
        self._webhooks = read_configuration(path)

    def use_deployed_webhook_configuration(self, profile: str) -> None:
        target = self._target
        if target.config is None:
            raise NotApplicable(
                "give the MutatingWebhookConfiguration you deploy (--webhook-config): namespace exclusion "
                "and the registered operations are kube-apiserver acting on it, not the endpoint"
            )
        if profile != target.deployed_profile:
            raise NotApplicable(
                f"the deployed MutatingWebhookConfiguration {target.config} is of the "
                f"{target.deployed_profile!r} profile ({target.profile_source}); this scenario is "
                f"written for the {profile!r} profile"
            )
        self._webhooks = read_configuration(target.config)

    def add_sidecar_webhook(self, container: Mapping[str, Any]) -> None:
        webhook = sidecar_webhook()
        self._caller.local[webhook.name] = SidecarInjector(container)
        self._webhooks = [*self._webhooks, webhook]

    def webhook_requests(self, namespace: str, name: str) -> list[str]:
        return [call.operation for call in self._caller.calls_for(namespace, name)]

    def make_webhook_unreachable(self) -> None:
        self._caller.caller = HttpsWebhookCaller(UNREACHABLE_URL, None, timeout=self._target.caller.timeout)

    def use_sizing_annotations(self, enabled: bool) -> None:
        if not enabled:
            raise NotApplicable("the endpoint's annotation profile cannot be switched from the suite")

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        self._namespaces.setdefault(name, namespace_object(name, labels))

    def allow_peer_pods_only_in(self, namespaces: list[str]) -> None:
        guarded = self._target.settings.target_runtimeclass
        self._policy = PeerPodNamespacePolicy(frozenset(namespaces), guarded)

    # --- actions and observations --------------------------------------------------------
    def create_pod(self, manifest: Mapping[str, Any], *, operation: str = "CREATE") -> PodOutcome:
        pod = json.loads(json.dumps(manifest))  # the suite's own copy, as the API server decodes it
        metadata = pod.setdefault("metadata", {})
        namespace = str(metadata.setdefault("namespace", "default"))
        key = (namespace, str(metadata.get("name", "")))
        ns = self._namespaces.setdefault(namespace, namespace_object(namespace))
        old = self._pods.get(key)
        result = admit(
            pod,
            operation=operation,
            namespace_obj=ns,
            webhooks=self._webhooks,
            caller=self._caller,
            user_info=USER_INFO,
            old_pod=old.pod if operation == "UPDATE" and old is not None else None,
        )
        if not result.allowed:
            outcome = PodOutcome(admitted=False, pod=None, denial=result.reason, code=result.code)
        elif self._policy is not None and (denial := self._policy.denial(result.pod, namespace)) is not None:
            outcome = PodOutcome(admitted=False, pod=None, denial=denial, code=403)
        else:
            outcome = PodOutcome(admitted=True, pod=result.pod, phase="Pending")
        if outcome.admitted or operation == "CREATE":
            self._pods[key] = outcome  # a refused update leaves the pod as it was
        return outcome

    def delete_pod(self, namespace: str, name: str) -> None:
        self._pods.pop((namespace, name), None)

    def get_pod(self, namespace: str, name: str) -> PodOutcome:
        try:
            return self._pods[(namespace, name)]
        except KeyError:
            raise AssertionError(f"pod {namespace}/{name} was never created") from None

    def close(self) -> None:
        self._pods.clear()
        self._namespaces.clear()


def excluded_namespaces(webhooks: list[MutatingWebhook]) -> set[str]:
    """Names every webhook's namespaceSelector excludes by ``kubernetes.io/metadata.name NotIn``."""
    excluded: set[str] | None = None
    for webhook in webhooks:
        names: set[str] = set()
        for expression in (webhook.namespace_selector or {}).get("matchExpressions") or []:
            if expression.get("key") == NAME_LABEL and expression.get("operator") == "NotIn":
                names.update(str(v) for v in expression.get("values") or [])
        excluded = names if excluded is None else excluded & names
    return excluded or set()


def detect_profile(webhooks: list[MutatingWebhook]) -> str:
    """``openshift`` when the configuration excludes OpenShift's own namespaces, else ``caa-chart``."""
    if any(name == "openshift" or name.startswith("openshift-") for name in excluded_namespaces(webhooks)):
        return "openshift"
    return "caa-chart"


def read_configuration(path: Path) -> list[MutatingWebhook]:
    """A MutatingWebhookConfiguration file, its errors naming the file."""
    text = read_text_bounded(path, what="webhook configuration", flag="--webhook-config")
    return load_webhook_configuration(text, source=str(path))


class WebhookTarget(Target):
    """Any AdmissionReview v1 endpoint reachable over HTTPS."""

    name = "webhook"
    environment_class = WebhookEnvironment

    def __init__(
        self,
        url: str,
        ca: Path | None,
        config: Path | None = None,
        timeout: float | None = None,
        profile: str | None = None,
    ) -> None:
        if ca is not None:
            load_certificates(ca)  # names the file if it is not a PEM bundle
        if profile is not None and profile not in PROFILE_NAMES:
            raise ConformanceInputError(f"--profile {profile!r}: not one of {', '.join(PROFILE_NAMES)}")
        if profile is not None and config is None:
            raise ConformanceInputError(
                f"--profile {profile} judges a deployed configuration: give it with --webhook-config"
            )
        self.url = url
        self.ca = ca
        self.config = config
        self.caller = HttpsWebhookCaller(url, ca, timeout)
        #: The endpoint's settings as the suite assumes them: it cannot read or change the
        #: endpoint's environment, so upstream's defaults (they name the policy's RuntimeClass).
        self.settings = WebhookSettings()
        self.webhooks = read_configuration(config) if config else self.profile("caa-chart")
        #: The profile the deployed configuration is judged against (None: none was given).
        self.deployed_profile: str | None = None
        self.profile_source = ""
        if config is not None:
            self.deployed_profile = profile or detect_profile(self.webhooks)
            self.profile_source = "--profile" if profile else "detected from its excluded namespaces"

    @classmethod
    def from_options(cls, options: TargetOptions) -> WebhookTarget:
        if not options.webhook_url:
            raise ConformanceInputError("--target webhook needs --webhook-url https://HOST:PORT/PATH")
        raw_timeout = options.extra.get("webhook_timeout") or os.environ.get(TIMEOUT_ENV)
        try:
            timeout = float(raw_timeout) if raw_timeout else None
        except ValueError:
            raise ConformanceInputError(
                f"webhook timeout {raw_timeout!r} ({TIMEOUT_ENV}) is not a number of seconds"
            ) from None
        if timeout is not None and not 0 < timeout <= 30:
            raise ConformanceInputError(
                f"webhook timeout {raw_timeout!r} ({TIMEOUT_ENV}) must be in (0, 30] seconds"
            )
        profile = options.extra.get("profile") or None
        return cls(options.webhook_url, options.webhook_ca, options.webhook_config, timeout, profile)

    def profile(self, profile: str) -> list[MutatingWebhook]:
        """A named configuration profile, unless the user gave their own configuration."""
        if self.config is not None:
            return read_configuration(self.config)
        return profiles.webhooks(profile)

    def identity(self) -> dict[str, str]:
        ident = {
            "target": self.name,
            "url": self.url,
            "ca": str(self.ca) if self.ca else "system trust store",
        }
        if self.config is not None:
            profile = f"{self.deployed_profile} profile, {self.profile_source}"
            ident["webhook configuration"] = f"{self.config} ({profile})"
        try:
            ident.update({f"certificate_{k}": v for k, v in self.peer_certificate().items()})
        except (OSError, ssl.SSLError) as exc:
            ident["certificate"] = f"unavailable: {exc}"
        return ident

    def peer_certificate(self) -> dict[str, str]:
        """Subject and fingerprint of the certificate the endpoint presents (verified)."""
        caller = self.caller
        with (
            socket.create_connection((caller.host, caller.port), timeout=5) as raw,
            caller.context.wrap_socket(raw, server_hostname=caller.host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        if der is None:
            raise ssl.SSLError("the endpoint presented no certificate")
        return certificate_identity_der(der)

    def open_environment(self) -> WebhookEnvironment:
        return WebhookEnvironment(self)
