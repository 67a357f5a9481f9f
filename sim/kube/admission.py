"""Mutating admission as kube-apiserver performs it, for pods.

The document's namespace exclusion and the webhook's failurePolicy are properties of the
*registration* (the MutatingWebhookConfiguration), not of the webhook server, so the suite
evaluates a registration exactly as the API server would: which webhooks apply to a request
(rules, namespaceSelector, objectSelector), the AdmissionReview it sends, and what it does
with the answer or with a failed call.

Faithful details worth knowing:

* A call that fails (unreachable, timeout, a reply that is not a valid AdmissionReview for
  this request, an unsupported patch type) is subject to ``failurePolicy``: ``Fail`` refuses
  the pod, ``Ignore`` continues with the pod unmutated.
* ``allowed: false`` is a denial whatever the policy; so is a patch that cannot be decoded
  or applied (the API server reports those as internal errors, not as call failures).
* ``objectSelector`` on UPDATE matches if either the old or the new object matches.

* ``reinvocationPolicy: IfNeeded`` calls a webhook once more when a later webhook changed
  the object after it; in-tree mutating plugins are not modelled as triggers.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlparse

import jsonpatch

from sim.errors import ConformanceInputError, TargetError
from sim.kube.selectors import SelectorError, label_selector_matches, validate_label_selector
from sim.peerpods.webhook import WebhookSettings, review_response
from sim.yamlload import YamlInputError, load_all

__all__ = [
    "ADMISSION_API_VERSION",
    "DEFAULT_USER_INFO",
    "AdmissionConfigError",
    "AdmissionOutcome",
    "InProcessWebhookCaller",
    "MutatingWebhook",
    "PeerPodNamespacePolicy",
    "RecordingCaller",
    "Rule",
    "SidecarInjector",
    "WebhookCall",
    "WebhookCallError",
    "WebhookCaller",
    "admit",
    "build_admission_review",
    "denial_code",
    "load_webhook_configuration",
    "parse_webhook_configuration",
    "rule_matches",
    "sidecar_webhook",
    "webhook_applies",
]

ADMISSION_API_VERSION = "admission.k8s.io/v1"
CONFIG_API_VERSION = "admissionregistration.k8s.io/v1"
CONFIG_KIND = "MutatingWebhookConfiguration"
POD_RESOURCE = ("", "v1", "pods")
DEFAULT_USER_INFO: dict[str, Any] = {
    "username": "kubernetes-admin",
    "groups": ["system:masters", "system:authenticated"],
}

_OPERATIONS = ("*", "CREATE", "UPDATE", "DELETE", "CONNECT")
_SCOPES = ("*", "Cluster", "Namespaced")
_FAILURE_POLICIES = ("Fail", "Ignore")
_SIDE_EFFECTS = ("None", "NoneOnDryRun")
_REINVOCATION = ("Never", "IfNeeded")
_MATCH_POLICIES = ("Exact", "Equivalent")
_OPTIONS_KIND = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}


class AdmissionConfigError(ConformanceInputError):
    """A webhook configuration the API server would refuse; names the file and field."""


class WebhookCallError(TargetError):
    """Calling a webhook failed (unreachable, timeout, bad reply): failurePolicy decides."""


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Rule:
    """One ``rules[]`` entry: which operations on which resources the webhook wants."""

    operations: tuple[str, ...]
    api_groups: tuple[str, ...]
    api_versions: tuple[str, ...]
    resources: tuple[str, ...]
    scope: str = "*"


@dataclass(frozen=True)
class MutatingWebhook:
    """One webhook of a MutatingWebhookConfiguration, with the API server's defaults applied."""

    name: str
    rules: tuple[Rule, ...]
    namespace_selector: Mapping[str, Any] | None = None
    object_selector: Mapping[str, Any] | None = None
    failure_policy: str = "Fail"
    timeout_seconds: int = 10
    reinvocation_policy: str = "Never"
    side_effects: str = "None"
    path: str | None = None
    match_policy: str = "Equivalent"
    admission_review_versions: tuple[str, ...] = ("v1",)

    def __post_init__(self) -> None:
        # Checked here too so that dataclasses.replace() cannot build a webhook the API
        # server would refuse (the reference target overrides failurePolicy that way).
        if self.failure_policy not in _FAILURE_POLICIES:
            raise AdmissionConfigError(
                f"webhook {self.name}: failurePolicy: {self.failure_policy!r} is not one of "
                f"{', '.join(_FAILURE_POLICIES)}"
            )


def _enum(value: object, allowed: Sequence[str], default: str, where: str) -> str:
    if value is None:
        return default
    if value not in allowed:
        raise AdmissionConfigError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _strings(value: object, where: str, *, required: bool = True) -> tuple[str, ...]:
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AdmissionConfigError(f"{where}: must be a list of strings, got {value!r}")
    if required and not value:
        raise AdmissionConfigError(f"{where}: must not be empty")
    if "*" in value and len(value) > 1:
        raise AdmissionConfigError(f"{where}: '*' must be the only entry when present")
    return tuple(value)


def _rule(raw: object, where: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise AdmissionConfigError(f"{where}: must be a mapping, got {raw!r}")
    operations = _strings(raw.get("operations"), f"{where}.operations")
    for op in operations:
        if op not in _OPERATIONS:
            raise AdmissionConfigError(f"{where}.operations: {op!r} is not one of {', '.join(_OPERATIONS)}")
    resources = _strings(raw.get("resources"), f"{where}.resources")
    for resource in resources:
        if resource.count("/") > 1 or resource.startswith("/") or resource.endswith("/"):
            raise AdmissionConfigError(
                f"{where}.resources: {resource!r} is not resource or resource/subresource"
            )
    return Rule(
        operations=operations,
        api_groups=_strings(raw.get("apiGroups"), f"{where}.apiGroups"),
        api_versions=_strings(raw.get("apiVersions"), f"{where}.apiVersions"),
        resources=resources,
        scope=_enum(raw.get("scope"), _SCOPES, "*", f"{where}.scope"),
    )


def _client_path(raw: object, where: str) -> str | None:
    """The request path from ``clientConfig`` (service.path or the URL's path)."""
    if not isinstance(raw, Mapping):
        raise AdmissionConfigError(f"{where}: is required (service or url)")
    service, url = raw.get("service"), raw.get("url")
    if (service is None) == (url is None):
        raise AdmissionConfigError(f"{where}: exactly one of service and url must be set")
    if url is not None:
        if not isinstance(url, str) or urlparse(url).scheme != "https":
            raise AdmissionConfigError(f"{where}.url: must be an https URL, got {url!r}")
        return urlparse(url).path or None
    if not isinstance(service, Mapping) or not service.get("name") or not service.get("namespace"):
        raise AdmissionConfigError(f"{where}.service: name and namespace are required")
    path = service.get("path")
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        raise AdmissionConfigError(f"{where}.service.path: must start with '/', got {path!r}")
    return path


def _timeout(value: object, where: str) -> int:
    if value is None:
        return 10
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 30:
        raise AdmissionConfigError(f"{where}: must be an integer from 1 to 30, got {value!r}")
    return value


def _selector(value: object, where: str) -> Mapping[str, Any] | None:
    try:
        validate_label_selector(value, where=where)
    except SelectorError as exc:
        raise AdmissionConfigError(str(exc)) from None
    return value if isinstance(value, Mapping) and value else None


def _webhook(raw: object, where: str) -> MutatingWebhook:
    if not isinstance(raw, Mapping):
        raise AdmissionConfigError(f"{where}: must be a mapping, got {raw!r}")
    name = raw.get("name")
    if not isinstance(name, str) or name.count(".") < 2:
        raise AdmissionConfigError(f"{where}.name: must be a fully qualified name (a.b.c), got {name!r}")
    if raw.get("matchConditions"):
        raise AdmissionConfigError(
            f"{where}.matchConditions: CEL match conditions are not supported by the simulator"
        )
    versions = _strings(raw.get("admissionReviewVersions"), f"{where}.admissionReviewVersions")
    if "v1" not in versions:
        raise AdmissionConfigError(
            f"{where}.admissionReviewVersions: must include v1 (the only version sent)"
        )
    if raw.get("sideEffects") is None:
        raise AdmissionConfigError(f"{where}.sideEffects: is required (None or NoneOnDryRun)")
    rules_raw = raw.get("rules") or []
    if not isinstance(rules_raw, list):
        raise AdmissionConfigError(f"{where}.rules: must be a list, got {rules_raw!r}")
    return MutatingWebhook(
        name=name,
        rules=tuple(_rule(r, f"{where}.rules[{i}]") for i, r in enumerate(rules_raw)),
        namespace_selector=_selector(raw.get("namespaceSelector"), f"{where}.namespaceSelector"),
        object_selector=_selector(raw.get("objectSelector"), f"{where}.objectSelector"),
        failure_policy=_enum(raw.get("failurePolicy"), _FAILURE_POLICIES, "Fail", f"{where}.failurePolicy"),
        timeout_seconds=_timeout(raw.get("timeoutSeconds"), f"{where}.timeoutSeconds"),
        reinvocation_policy=_enum(
            raw.get("reinvocationPolicy"), _REINVOCATION, "Never", f"{where}.reinvocationPolicy"
        ),
        side_effects=_enum(raw.get("sideEffects"), _SIDE_EFFECTS, "None", f"{where}.sideEffects"),
        path=_client_path(raw.get("clientConfig"), f"{where}.clientConfig"),
        match_policy=_enum(raw.get("matchPolicy"), _MATCH_POLICIES, "Equivalent", f"{where}.matchPolicy"),
        admission_review_versions=versions,
    )


def parse_webhook_configuration(obj: object, *, source: str) -> list[MutatingWebhook]:
    """Validate a MutatingWebhookConfiguration object and return its webhooks, in order."""
    if not isinstance(obj, Mapping):
        raise AdmissionConfigError(f"{source}: not a Kubernetes object (got {type(obj).__name__})")
    if obj.get("kind") != CONFIG_KIND:
        raise AdmissionConfigError(f"{source}: kind: expected {CONFIG_KIND}, got {obj.get('kind')!r}")
    if obj.get("apiVersion") != CONFIG_API_VERSION:
        raise AdmissionConfigError(
            f"{source}: apiVersion: expected {CONFIG_API_VERSION}, got {obj.get('apiVersion')!r}"
        )
    raw_webhooks = obj.get("webhooks") or []
    if not isinstance(raw_webhooks, list):
        raise AdmissionConfigError(f"{source}: webhooks: must be a list")
    webhooks = [_webhook(raw, f"{source}: webhooks[{i}]") for i, raw in enumerate(raw_webhooks)]
    names = [w.name for w in webhooks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise AdmissionConfigError(f"{source}: webhooks: duplicate name(s) {', '.join(duplicates)}")
    return webhooks


def load_webhook_configuration(text: str, *, source: str) -> list[MutatingWebhook]:
    """Parse a MutatingWebhookConfiguration YAML document; errors name ``source`` and the field."""
    try:
        documents = load_all(text, source=source)
    except YamlInputError as exc:
        raise AdmissionConfigError(str(exc)) from None
    if len(documents) != 1:
        raise AdmissionConfigError(f"{source}: expected one YAML document, found {len(documents)}")
    return parse_webhook_configuration(documents[0], source=source)


# --------------------------------------------------------------------------- matching


def rule_matches(
    rule: Rule,
    *,
    operation: str,
    resource: tuple[str, str, str],
    subresource: str = "",
    namespaced: bool = True,
) -> bool:
    """One rule against one request, as the API server's rule matcher."""
    group, version, plural = resource
    if "*" not in rule.operations and operation not in rule.operations:
        return False
    if "*" not in rule.api_groups and group not in rule.api_groups:
        return False
    if "*" not in rule.api_versions and version not in rule.api_versions:
        return False
    if (rule.scope == "Cluster" and namespaced) or (rule.scope == "Namespaced" and not namespaced):
        return False
    for entry in rule.resources:
        res, _, sub = entry.partition("/")
        if (res in ("*", plural)) and (sub in ("*", subresource)):
            return True
    return False


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    if not obj:
        return {}
    return (obj.get("metadata") or {}).get("labels") or {}


def webhook_applies(
    webhook: MutatingWebhook,
    *,
    operation: str,
    resource: tuple[str, str, str] = POD_RESOURCE,
    namespace: Mapping[str, Any],
    obj: Mapping[str, Any],
    old_obj: Mapping[str, Any] | None = None,
    subresource: str = "",
) -> bool:
    """Whether the API server would call ``webhook`` for this request.

    ``namespace`` is the Namespace *object* (its labels are what namespaceSelector sees);
    the objectSelector matches if the new object or, on UPDATE/DELETE, the old one does.
    """
    if not any(
        rule_matches(r, operation=operation, resource=resource, subresource=subresource)
        for r in webhook.rules
    ):
        return False
    where = f"webhook {webhook.name}"
    if not label_selector_matches(
        webhook.namespace_selector, _labels(namespace), where=f"{where} namespaceSelector"
    ):
        return False
    selector, swhere = webhook.object_selector, f"{where} objectSelector"
    return label_selector_matches(selector, _labels(obj), where=swhere) or (
        old_obj is not None and label_selector_matches(selector, _labels(old_obj), where=swhere)
    )


# --------------------------------------------------------------------------- the review


def build_admission_review(
    *,
    pod: Mapping[str, Any],
    namespace: str,
    operation: str,
    uid: str,
    user_info: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    old_pod: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The AdmissionReview v1 request kube-apiserver sends for a pod."""
    kind = {"group": "", "version": "v1", "kind": "Pod"}
    resource = {"group": "", "version": "v1", "resource": "pods"}
    options_kind = _OPTIONS_KIND.get(operation)
    request: dict[str, Any] = {
        "uid": uid,
        "kind": dict(kind),
        "resource": dict(resource),
        "requestKind": dict(kind),
        "requestResource": dict(resource),
        "name": str((pod.get("metadata") or {}).get("name") or ""),
        "namespace": namespace,
        "operation": operation,
        "userInfo": copy.deepcopy(dict(user_info if user_info is not None else DEFAULT_USER_INFO)),
        "object": copy.deepcopy(dict(pod)) if operation != "DELETE" else None,
        "oldObject": copy.deepcopy(dict(old_pod)) if old_pod is not None else None,
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": options_kind} if options_kind else None,
    }
    return {"apiVersion": ADMISSION_API_VERSION, "kind": "AdmissionReview", "request": request}


class WebhookCaller(Protocol):
    """Delivers a review to a webhook; raises WebhookCallError when the call itself fails."""

    def __call__(self, webhook: MutatingWebhook, review: dict[str, Any], /) -> dict[str, Any]: ...


class InProcessWebhookCaller:
    """Calls the reference webhook (:func:`sim.peerpods.webhook.review_response`) without a network.

    It serves only the reference server's path, so a registration pointing elsewhere fails
    the way a real call would (404 -> a call failure under failurePolicy).
    """

    SERVED_PATHS = ("/mutate-v1-pod",)

    def __init__(self, settings: WebhookSettings | None = None) -> None:
        self.settings = settings if settings is not None else WebhookSettings()

    def __call__(self, webhook: MutatingWebhook, review: dict[str, Any]) -> dict[str, Any]:
        if webhook.path not in self.SERVED_PATHS:
            raise WebhookCallError(f"the server responded with status 404 for path {webhook.path!r}")
        try:
            return review_response(review, self.settings)
        except Exception as exc:  # the contract says it never raises; a crash is a 500
            raise WebhookCallError(f"the server responded with status 500: {exc}") from exc


#: The name under which the suite registers its stand-in for another mutating webhook.
SIDECAR_WEBHOOK = "sidecar-injector.conformance.peerpods.io"


def sidecar_webhook() -> MutatingWebhook:
    """The registration of another mutating webhook (a sidecar injector), for pod CREATE
    in every namespace, to be placed after the peer-pods webhook."""
    return MutatingWebhook(
        name=SIDECAR_WEBHOOK,
        rules=(Rule(operations=("CREATE",), api_groups=("",), api_versions=("v1",), resources=("pods",)),),
        path="/inject",
    )


class SidecarInjector:
    """Stands in for another mutating webhook, such as a service mesh's sidecar injector.

    It is not the system under test: it plays the *other* webhook of a cluster, so that
    ``reinvocationPolicy: IfNeeded`` has something to react to. It appends ``container``
    to every pod it is sent that has no container of that name, as a JSONPatch.
    """

    def __init__(self, container: Mapping[str, Any]) -> None:
        self.container = copy.deepcopy(dict(container))

    def __call__(self, webhook: MutatingWebhook, review: dict[str, Any]) -> dict[str, Any]:
        request = review["request"]
        pod = request.get("object") or {}
        containers = (pod.get("spec") or {}).get("containers") or []
        response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
        if all(c.get("name") != self.container.get("name") for c in containers):
            ops = [{"op": "add", "path": "/spec/containers/-", "value": self.container}]
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode("ascii")
        return {"apiVersion": ADMISSION_API_VERSION, "kind": "AdmissionReview", "response": response}


@dataclass(frozen=True)
class WebhookCall:
    """One AdmissionReview the API server sent, and how the webhook answered it."""

    webhook: str
    operation: str
    namespace: str
    name: str
    allowed: bool | None  # None: the call itself failed (unreachable, timeout, bad reply)
    code: int | None = None  # kube-apiserver's status for a refusal (see denial_code)


class RecordingCaller:
    """Delivers reviews as ``caller`` does and remembers every call, as an audit log would.

    Webhooks registered in ``local`` under their name (the suite's stand-in for another
    webhook) are answered in process; every other call goes to ``caller``.
    """

    def __init__(self, caller: WebhookCaller) -> None:
        self.caller = caller
        self.local: dict[str, WebhookCaller] = {}
        self.calls: list[WebhookCall] = []

    def __call__(self, webhook: MutatingWebhook, review: dict[str, Any]) -> dict[str, Any]:
        request = review["request"]
        where = (webhook.name, str(request.get("operation")), str(request.get("namespace")))
        name = str(request.get("name") or "")
        try:
            reply = self.local.get(webhook.name, self.caller)(webhook, review)
        except WebhookCallError:
            self.calls.append(WebhookCall(*where, name, allowed=None))
            raise
        response = reply.get("response") if isinstance(reply, Mapping) else None
        allowed = response.get("allowed") if isinstance(response, Mapping) else None
        if not isinstance(allowed, bool) or not isinstance(response, Mapping):
            self.calls.append(WebhookCall(*where, name, allowed=None))
        else:
            code = None if allowed else denial_code(response)
            self.calls.append(WebhookCall(*where, name, allowed=allowed, code=code))
        return reply

    def calls_for(self, namespace: str, name: str, *, others: bool = False) -> list[WebhookCall]:
        """The calls made for one pod, in order; without ``others``, not those to ``local`` webhooks."""
        mine = [call for call in self.calls if call.namespace == namespace and call.name == name]
        return [call for call in mine if others or call.webhook not in self.local]


# --------------------------------------------------------------------------- admission


@dataclass
class AdmissionOutcome:
    """The result of the mutating phase for one pod."""

    pod: dict[str, Any]
    allowed: bool
    reason: str | None = None
    called: list[str] = field(default_factory=list)
    patched: bool = False
    ignored: list[str] = field(default_factory=list)  # webhooks whose failure was ignored
    warnings: list[str] = field(default_factory=list)
    reinvoked: list[str] = field(default_factory=list)  # IfNeeded webhooks called a second time
    changes: int = 0  # how many calls actually changed the object
    code: int | None = None  # the HTTP status kube-apiserver answers a refused request with


def denial_code(response: Mapping[str, Any]) -> int:
    """The HTTP status kube-apiserver answers when a webhook's ``allowed`` is false.

    The webhook's ``status.code``, raised to 400 when it is missing or below 400
    (k8s.io/apiserver ``webhook/errors`` ``ToStatusErr``): a webhook answering with
    controller-runtime's ``admission.Errored(400, err)`` refuses with 400, ``Denied`` with 403.
    """
    code = (response.get("status") or {}).get("code")
    if not isinstance(code, int) or isinstance(code, bool) or code < 400:
        return 400
    return code


class _Rejection(Exception):
    """A webhook's answer refuses the pod whatever the failure policy."""


def _response_part(reply: object, uid: str) -> Mapping[str, Any]:
    """Check the reply is an AdmissionReview v1 answer to this request (else a call failure)."""
    if not isinstance(reply, Mapping):
        raise WebhookCallError("received invalid webhook response: not a JSON object")
    if reply.get("apiVersion") != ADMISSION_API_VERSION or reply.get("kind") != "AdmissionReview":
        raise WebhookCallError(
            "received invalid webhook response: expected admission.k8s.io/v1 AdmissionReview, "
            f"got {reply.get('apiVersion')!r} {reply.get('kind')!r}"
        )
    response = reply.get("response")
    if not isinstance(response, Mapping):
        raise WebhookCallError("received invalid webhook response: response is missing")
    if response.get("uid") != uid:
        raise WebhookCallError(f"expected response.uid={uid!r}, got {response.get('uid')!r}")
    if not isinstance(response.get("allowed"), bool):
        raise WebhookCallError("received invalid webhook response: response.allowed is not a boolean")
    if "patch" in response and response.get("patchType") != "JSONPatch":
        raise WebhookCallError(f"unsupported patch type {response.get('patchType')!r}")
    return response


def _apply_patch(pod: dict[str, Any], encoded: object) -> dict[str, Any]:
    """Decode the base64 JSON patch and apply it (errors refuse the pod)."""
    try:
        if not isinstance(encoded, str):
            raise TypeError("patch is not a base64 string")
        operations = json.loads(base64.b64decode(encoded, validate=True))
        patched = jsonpatch.apply_patch(pod, operations, in_place=False)
    except (
        binascii.Error,
        ValueError,
        TypeError,
        jsonpatch.JsonPatchException,
        jsonpatch.JsonPointerException,
    ) as exc:
        raise _Rejection(f"Internal error occurred: {exc}") from None
    if not isinstance(patched, dict) or patched.get("kind", "Pod") != "Pod":
        raise _Rejection("Internal error occurred: the patched object is not a Pod")
    return patched


def _call_one(
    webhook: MutatingWebhook, outcome: AdmissionOutcome, caller: WebhookCaller, request: dict[str, Any]
) -> bool:
    """Call one webhook and apply its answer to ``outcome``; False when the pod is refused."""
    uid = str(uuid.uuid4())
    review = build_admission_review(pod=outcome.pod, uid=uid, **request)
    outcome.called.append(webhook.name)
    try:
        response = _response_part(caller(webhook, review), uid)
    except WebhookCallError as exc:
        if webhook.failure_policy == "Ignore":
            outcome.ignored.append(webhook.name)
            outcome.warnings.append(f'failed calling webhook "{webhook.name}", failing open: {exc}')
            return True
        outcome.allowed = False
        outcome.reason = f'Internal error occurred: failed calling webhook "{webhook.name}": {exc}'
        outcome.code = 500
        return False
    if not response["allowed"]:
        message = ((response.get("status") or {}).get("message")) or "without explanation"
        outcome.allowed = False
        outcome.reason = f'admission webhook "{webhook.name}" denied the request: {message}'
        outcome.code = denial_code(response)
        return False
    outcome.warnings.extend(str(w) for w in response.get("warnings") or [])
    if "patch" in response:
        try:
            patched = _apply_patch(outcome.pod, response["patch"])
        except _Rejection as exc:
            outcome.allowed = False
            outcome.reason = f'admission webhook "{webhook.name}": {exc}'
            outcome.code = 500
            return False
        outcome.patched = True
        if patched != outcome.pod:
            outcome.pod = patched
            outcome.changes += 1
    return True


def admit(
    pod: Mapping[str, Any],
    *,
    operation: str,
    namespace_obj: Mapping[str, Any],
    webhooks: Sequence[MutatingWebhook],
    caller: WebhookCaller,
    user_info: Mapping[str, Any] | None = None,
    old_pod: Mapping[str, Any] | None = None,
    dry_run: bool = False,
) -> AdmissionOutcome:
    """Run the mutating webhooks, in order, over ``pod``; the input is never modified.

    A webhook with ``reinvocationPolicy: IfNeeded`` is called once more, after the first
    round, if a *later* webhook changed the object after its own call (as kube-apiserver
    does; its own patch does not count).
    """
    request: dict[str, Any] = {
        "namespace": str((namespace_obj.get("metadata") or {}).get("name") or ""),
        "operation": operation,
        "user_info": user_info,
        "dry_run": dry_run,
        "old_pod": old_pod,
    }
    outcome = AdmissionOutcome(pod=copy.deepcopy(dict(pod)), allowed=True)
    changes_after_call: dict[int, int] = {}
    for index, webhook in enumerate(webhooks):
        if webhook_applies(
            webhook, operation=operation, namespace=namespace_obj, obj=outcome.pod, old_obj=old_pod
        ):
            if not _call_one(webhook, outcome, caller, request):
                return outcome
            changes_after_call[index] = outcome.changes
    for index, webhook in enumerate(webhooks):
        if webhook.reinvocation_policy != "IfNeeded" or index not in changes_after_call:
            continue
        if outcome.changes == changes_after_call[index]:
            continue  # nothing changed the object after this webhook's own call
        if webhook_applies(
            webhook, operation=operation, namespace=namespace_obj, obj=outcome.pod, old_obj=old_pod
        ):
            outcome.reinvoked.append(webhook.name)
            if not _call_one(webhook, outcome, caller, request):
                return outcome
    return outcome


@dataclass(frozen=True)
class PeerPodNamespacePolicy:
    """The document's best practice as a validating policy: peer pods only where allowed.

    Equivalent to a ValidatingAdmissionPolicy whose CEL rule refuses a pod whose
    ``runtimeClassName`` is the peer-pods class unless its namespace is listed.
    """

    allowed_namespaces: frozenset[str]
    runtime_class: str
    name: str = "peer-pods-allowed-namespaces"

    def denial(self, pod: Mapping[str, Any], namespace: str) -> str | None:
        """The refusal message, or None when the pod is allowed."""
        if (pod.get("spec") or {}).get("runtimeClassName") != self.runtime_class:
            return None
        if namespace in self.allowed_namespaces:
            return None
        allowed = ", ".join(sorted(self.allowed_namespaces)) or "none"
        return (
            f"ValidatingAdmissionPolicy '{self.name}' with binding '{self.name}-binding' denied request: "
            f"runtimeClassName {self.runtime_class} is not allowed in namespace {namespace} "
            f"(peer pods are allowed only in: {allowed})"
        )
