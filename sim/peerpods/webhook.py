"""The reference peer-pods mutating webhook, as pure functions over plain dicts.

It reproduces what CAA's ``src/webhook`` does to a pod (spec section 3) so that the suite
can tell what a conforming webhook must answer. Three entry points share one plan:

* :func:`mutate_pod` returns the mutated copy (what the cluster stores);
* :func:`mutation_patch` returns the RFC 6902 operations from the original to that copy,
  built directly from the plan rather than by diffing, because admission is on the hot
  path of the scheduler benchmarks;
* :func:`review_response` wraps the patch in an AdmissionReview answer and, like
  controller-runtime, turns an object that cannot be decoded as a Pod into ``allowed:
  false`` with code 400 instead of raising.

Decoding is checked the way the Go webhook's decoder checks it: every quantity of the pod
(every container's requests and limits, ephemeral containers, overhead, size limits...:
sim.podquantities) must be valid even when the runtime class does not match, because a pod
that Go cannot decode is refused before the runtime class is looked at. ``default_gpus`` is
the GPU sum as upstream writes it, ``Quantity.String()`` in the format of the first request
(``1Ki``, ``1e3``, ``1k``), although Kata refuses anything but an integer (WH-023).

At the int64 edge the annotations follow CAA where it is defined (a memory sum of 2^63-1
bytes or more makes ``RoundUpToMiB`` fail and CAA writes ``"0"``) and refuse where Go's
result is undefined (a CPU or GPU sum beyond int64).

Deliberate differences from CAA: a matching pod without containers is refused with 400
(Go would index an empty slice); a pod with more than :data:`sim.bounds.MAX_POD_CONTAINERS`
containers or :data:`sim.bounds.MAX_POD_QUANTITIES` quantities is refused with 400 (bounded
work per review; Go has no such bound); the patch carries only the intended changes, not the
side effects of re-marshalling a Go struct (``creationTimestamp: null``, ``status: {}``).
"""

from __future__ import annotations

import base64
import copy
import decimal
import json
import marshal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sim.bounds import MAX_POD_CONTAINERS, MAX_POD_QUANTITIES, excerpt, short
from sim.errors import ConformanceInputError
from sim.podquantities import check_pod_quantities, count_pod_quantities
from sim.quantities import CONTEXT as QUANTITY_CONTEXT
from sim.quantities import (
    MAX_QUANTITY,
    QuantityError,
    ceil_int,
    parse_quantity,
    quantity_format,
    quantity_string,
    quantity_value,
    to_mib_ceil,
)

__all__ = [
    "ANN_GPUS",
    "ANN_MEMORY",
    "ANN_VCPUS",
    "ENV_EXTENDED_RESOURCE",
    "ENV_TARGET_RUNTIMECLASS",
    "EXTENDED_RESOURCE_DEFAULT",
    "GPU_RESOURCE",
    "TARGET_RUNTIMECLASS_DEFAULT",
    "PodError",
    "WebhookSettings",
    "mutate_pod",
    "mutation_patch",
    "review_response",
]

#: The webhook's settings: upstream's environment variables and their defaults. This is their
#: one home; the CLI, the server and every target go through :class:`WebhookSettings`.
ENV_TARGET_RUNTIMECLASS = "TARGET_RUNTIMECLASS"
ENV_EXTENDED_RESOURCE = "POD_VM_EXTENDED_RESOURCE"
EXTENDED_RESOURCE_DEFAULT = "kata.peerpods.io/vm"
TARGET_RUNTIMECLASS_DEFAULT = "kata-remote"
ANN_VCPUS = "io.katacontainers.config.hypervisor.default_vcpus"
ANN_MEMORY = "io.katacontainers.config.hypervisor.default_memory"
ANN_GPUS = "io.katacontainers.config.hypervisor.default_gpus"
GPU_RESOURCE = "nvidia.com/gpu"
ADMISSION_V1 = "admission.k8s.io/v1"
_ADMISSION_VERSIONS = (ADMISSION_V1, "admission.k8s.io/v1beta1")
_CONTAINER_LISTS = ("containers", "initContainers")
_ZERO = Decimal(0)

Pod = dict[str, Any]


class PodError(ConformanceInputError):
    """The object is not a pod the webhook can decode; the message names pod, container and field."""


@dataclass(frozen=True)
class WebhookSettings:
    """What a webhook deployment is configured with (CAA reads these from its environment).

    The webhook's ``POD_VM_EXTENDED_RESOURCE`` renames only what the webhook *requests*; the
    cloud-api-adaptor advertises ``kata.peerpods.io/vm`` whatever it says (see
    :data:`sim.peerpods.adaptor.ADVERTISED_RESOURCE`).
    """

    target_runtimeclass: str = TARGET_RUNTIMECLASS_DEFAULT
    extended_resource: str = EXTENDED_RESOURCE_DEFAULT
    annotations: bool = True  # False = the document's profile: no CAA sizing annotations

    @classmethod
    def resolve(
        cls,
        env: Mapping[str, str],
        *,
        target_runtimeclass: str | None = None,
        extended_resource: str | None = None,
        annotations: bool | None = None,
    ) -> WebhookSettings:
        """Defaults, overridden by upstream's variables in ``env``, overridden by the flags given.

        An empty variable or flag means the default, as in CAA.
        """
        return cls(
            target_runtimeclass=(
                target_runtimeclass or env.get(ENV_TARGET_RUNTIMECLASS) or TARGET_RUNTIMECLASS_DEFAULT
            ),
            extended_resource=(
                extended_resource or env.get(ENV_EXTENDED_RESOURCE) or EXTENDED_RESOURCE_DEFAULT
            ),
            annotations=True if annotations is None else annotations,
        )

    def to_env(self) -> dict[str, str]:
        """The variables a webhook process is started with to have these settings
        (``annotations`` has no upstream variable: only the in-process reference switches it)."""
        return {
            ENV_TARGET_RUNTIMECLASS: self.target_runtimeclass,
            ENV_EXTENDED_RESOURCE: self.extended_resource,
        }

    def with_env(self, name: str, value: str) -> WebhookSettings:
        """These settings with one of upstream's variables set (annotations kept)."""
        if name not in (ENV_TARGET_RUNTIMECLASS, ENV_EXTENDED_RESOURCE):
            raise ConformanceInputError(
                f"the webhook has no setting {name!r} "
                f"(known: {ENV_TARGET_RUNTIMECLASS}, {ENV_EXTENDED_RESOURCE})"
            )
        return WebhookSettings.resolve({**self.to_env(), name: value}, annotations=self.annotations)


@dataclass
class _Totals:
    """Sums over containers and init containers of the resources the annotations depend on."""

    cpu_requests: Decimal = Decimal(0)
    cpu_limits: Decimal = Decimal(0)
    memory_requests: Decimal = Decimal(0)
    memory_limits: Decimal = Decimal(0)
    gpu_requests: Decimal = Decimal(0)
    #: The GPU sum's resource.Quantity format: an addend's, taken while the sum is zero (Go's Add).
    gpu_format: str = "DecimalSI"


@dataclass
class _Plan:
    """Everything the mutation changes, computed once and applied either as a copy or a patch."""

    matches: bool
    annotations: dict[str, str] = field(default_factory=dict)
    container_counts: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- decoding


def _pod_label(pod: dict[str, Any]) -> str:
    """Name the pod in messages: namespace/name, else generateName, else '<unnamed>'."""
    meta = pod.get("metadata")
    if not isinstance(meta, dict):
        return "pod <unnamed>"
    name = meta.get("name") or (f"{meta['generateName']}*" if meta.get("generateName") else "<unnamed>")
    namespace = meta.get("namespace")
    return f"pod {short(namespace)}/{short(name)}" if namespace else f"pod {short(name)}"


def _check_kind(pod: object) -> dict[str, Any]:
    """Refuse what a Pod decoder refuses: non-objects and objects of another kind."""
    if not isinstance(pod, dict):
        raise PodError(f"object is a {type(pod).__name__}, not a Pod")
    kind = pod.get("kind", "Pod")
    api_version = pod.get("apiVersion", "v1")
    if kind != "Pod" or api_version != "v1":
        raise PodError(f"{_pod_label(pod)}: object is {short(api_version)}/{short(kind)}, not v1/Pod")
    return pod


def _object(parent: dict[str, Any], key: str, where: Callable[[], str]) -> dict[str, Any]:
    """A nested object that may be absent or null (Go decodes both as empty) but not another type.

    ``where`` builds the location only when there is an error: messages are detailed, and
    formatting them for every field of every pod would dominate the admission hot path.
    """
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PodError(f"{where()}.{key}: expected an object, got {type(value).__name__}")
    return value


def _check_metadata(pod: dict[str, Any]) -> None:
    """Annotation values must be strings: Go decodes them into map[string]string."""
    meta = _object(pod, "metadata", lambda: _pod_label(pod))
    annotations = _object(meta, "annotations", lambda: f"{_pod_label(pod)}: metadata")
    for key, value in annotations.items():
        if not isinstance(value, str):
            raise PodError(
                f"{_pod_label(pod)}: metadata.annotations[{excerpt(key)}]: "
                f"expected a string, got {excerpt(value)}"
            )


def _containers(pod: dict[str, Any], spec: dict[str, Any], list_name: str) -> list[dict[str, Any]]:
    """The containers of one list, each checked to be an object."""
    value = spec.get(list_name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PodError(f"{_pod_label(pod)}: spec.{list_name}: expected a list, got {type(value).__name__}")
    for index, container in enumerate(value):
        if not isinstance(container, dict):
            raise PodError(f"{_pod_label(pod)}: spec.{list_name}[{index}]: expected an object")
    return value


def _container_where(pod: dict[str, Any], list_name: str, index: int) -> str:
    """The prefix of every message about one container: pod, list, index and name."""
    name = pod["spec"][list_name][index].get("name")
    shown = f" ({name})" if isinstance(name, str) and name else ""
    return f"{_pod_label(pod)}: {list_name}[{index}]{shown}"


def _resource_list(
    pod: dict[str, Any], list_name: str, index: int, kind: str
) -> tuple[dict[str, Any], dict[str, Decimal]]:
    """Parse one container's ``requests`` or ``limits`` (raw and parsed); every entry must be a quantity."""

    def where() -> str:
        return _container_where(pod, list_name, index)

    resources = _object(pod["spec"][list_name][index], "resources", where)
    values = _object(resources, kind, lambda: f"{where()}.resources")
    parsed: dict[str, Decimal] = {}
    for name, raw in values.items():
        value = quantity_value(raw)
        if value is None:
            try:
                parse_quantity(raw, where=f"{where()}.resources.{kind}.{name}")
            except QuantityError as exc:
                raise PodError(str(exc)) from exc
            raise AssertionError("quantity_value and parse_quantity disagree")  # pragma: no cover
        parsed[name] = value
    return values, parsed


def _add_container(totals: _Totals, pod: dict[str, Any], list_name: str, index: int) -> None:
    """Add one container's requests and limits to the running sums."""
    raw_requests, requests = _resource_list(pod, list_name, index, "requests")
    _, limits = _resource_list(pod, list_name, index, "limits")
    zero = _ZERO
    totals.cpu_requests += requests.get("cpu", zero)
    totals.cpu_limits += limits.get("cpu", zero)
    totals.memory_requests += requests.get("memory", zero)
    totals.memory_limits += limits.get("memory", zero)
    gpu = requests.get(GPU_RESOURCE)
    if gpu is not None:
        if totals.gpu_requests == 0:
            totals.gpu_format = quantity_format(raw_requests[GPU_RESOURCE])
        totals.gpu_requests += gpu


def _decode(pod: object) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]], _Totals]:
    """Check the pod as the Go decoder would and sum its resources."""
    checked = _check_kind(pod)
    _check_metadata(checked)
    spec = _object(checked, "spec", lambda: _pod_label(checked))
    runtime_class = spec.get("runtimeClassName")
    if runtime_class is not None and not isinstance(runtime_class, str):
        raise PodError(
            f"{_pod_label(checked)}: spec.runtimeClassName: expected a string, got {excerpt(runtime_class)}"
        )
    lists = {name: _containers(checked, spec, name) for name in _CONTAINER_LISTS}
    _check_container_count(checked, spec, lists)
    try:
        quantities = count_pod_quantities(checked, MAX_POD_QUANTITIES)
    except ConformanceInputError as exc:
        raise PodError(f"{_pod_label(checked)}: {exc}") from exc
    if quantities > MAX_POD_QUANTITIES:
        raise PodError(
            f"{_pod_label(checked)}: more than {MAX_POD_QUANTITIES:,} quantities (requests, limits, "
            "overhead, size limits); the webhook parses at most that many per pod "
            "(its bound on work per review)"
        )
    totals = _Totals()
    with decimal.localcontext(QUANTITY_CONTEXT):  # sums of huge quantities must not overflow
        for list_name, containers in lists.items():
            for index in range(len(containers)):
                _add_container(totals, checked, list_name, index)
    try:
        check_pod_quantities(checked)
    except ConformanceInputError as exc:
        raise PodError(f"{_pod_label(checked)}: {exc}") from exc
    return spec, lists, totals


def _check_container_count(pod: dict[str, Any], spec: dict[str, Any], lists: dict[str, list[Any]]) -> None:
    """Refuse a pod with more containers than the webhook bounds its work to (sim.bounds)."""
    ephemeral = spec.get("ephemeralContainers")
    count = sum(map(len, lists.values())) + (len(ephemeral) if isinstance(ephemeral, list) else 0)
    if count > MAX_POD_CONTAINERS:
        raise PodError(
            f"{_pod_label(pod)}: {count:,} containers (containers, initContainers and "
            f"ephemeralContainers together); the webhook handles at most {MAX_POD_CONTAINERS:,} "
            "per pod (its bound on work per review)"
        )


# --------------------------------------------------------------------------- planning


def _size_annotation(requests: Decimal, limits: Decimal) -> Decimal | None:
    """CAA's rule: prefer the limit sum when requests are set and the limit is not smaller."""
    if requests != 0 and limits >= requests:
        return limits
    if requests > 0:
        return requests
    return None


def _within_int64(pod: object, what: str, value: Decimal) -> Decimal:
    """Refuse a sum Go cannot convert: ``Value()`` on it overflows and CAA's result is undefined."""
    if value.copy_abs() > MAX_QUANTITY:
        label = _pod_label(pod)  # type: ignore[arg-type]  # _decode checked it is a dict
        raise PodError(f"{label}: the {what} sum {value} is outside the int64 range the webhook converts in")
    return value


def _memory_mib(pod: object, memory: Decimal) -> str:
    """MiB rounded up; CAA writes "0" when RoundUpToMiB refuses a value of 2^63-1 bytes or more."""
    if memory >= MAX_QUANTITY:
        return "0"
    return str(to_mib_ceil(_within_int64(pod, "memory", memory)))


def _annotations(pod: object, totals: _Totals) -> dict[str, str]:
    """The sizing annotations the pod VM will be created from."""
    result: dict[str, str] = {}
    cpu = _size_annotation(totals.cpu_requests, totals.cpu_limits)
    if cpu is not None:
        result[ANN_VCPUS] = str(ceil_int(_within_int64(pod, "cpu", cpu)))
    memory = _size_annotation(totals.memory_requests, totals.memory_limits)
    if memory is not None:
        result[ANN_MEMORY] = _memory_mib(pod, memory)
    if totals.gpu_requests > 0:
        # as upstream: gpuRequest.String(), so "1Ki" or "1e3" stay as written (Kata then refuses them)
        result[ANN_GPUS] = quantity_string(
            _within_int64(pod, "nvidia.com/gpu request", totals.gpu_requests), totals.gpu_format
        )
    return result


def _plan(pod: object, settings: WebhookSettings) -> _Plan:
    """Decide what changes; raises PodError for anything the webhook could not decode."""
    spec, lists, totals = _decode(pod)
    if spec.get("runtimeClassName") != settings.target_runtimeclass:
        return _Plan(matches=False)
    if not lists["containers"]:
        label = _pod_label(pod)  # type: ignore[arg-type]  # _decode checked it is a dict
        raise PodError(f"{label}: spec.containers is empty; a peer pod needs at least one container")
    return _Plan(
        matches=True,
        annotations=_annotations(pod, totals) if settings.annotations else {},
        container_counts={name: len(containers) for name, containers in lists.items()},
    )


def _resources_for(list_name: str, index: int, settings: WebhookSettings) -> dict[str, Any]:
    """Cleared resources, except the pod VM unit on the first container."""
    if list_name == "containers" and index == 0:
        unit = {settings.extended_resource: "1"}
        return {"requests": dict(unit), "limits": dict(unit)}
    return {}


# --------------------------------------------------------------------------- copy


def _deep_copy(value: Any) -> Any:
    """Deep copy of a pod; marshal's C round trip is about twice as fast as a Python walk.

    marshal handles exactly JSON's types; a YAML-loaded pod can hold others (a datetime from
    an unquoted timestamp), and those fall back to copy.deepcopy.
    """
    try:
        return marshal.loads(marshal.dumps(value))
    except ValueError:
        return copy.deepcopy(value)


def mutate_pod(pod: dict[str, Any], settings: WebhookSettings = WebhookSettings()) -> dict[str, Any]:
    """Return the pod as the webhook would leave it; the input is never modified."""
    plan = _plan(pod, settings)
    result: dict[str, Any] = _deep_copy(pod)
    if not plan.matches:
        return result
    if plan.annotations:
        meta = result.get("metadata") or {}
        result["metadata"] = meta
        meta["annotations"] = {**(meta.get("annotations") or {}), **plan.annotations}
    spec = result["spec"]
    for list_name, count in plan.container_counts.items():
        for index in range(count):
            spec[list_name][index]["resources"] = _resources_for(list_name, index, settings)
    return result


# --------------------------------------------------------------------------- patch


def _escape(token: str) -> str:
    """JSON-pointer escaping (RFC 6901): '~' first, then '/' (kata.peerpods.io/vm)."""
    return token.replace("~", "~0").replace("/", "~1")


def _annotation_ops(pod: Mapping[str, Any], wanted: Mapping[str, str]) -> list[dict[str, Any]]:
    """Operations that set the sizing annotations, creating metadata/annotations if needed."""
    if not wanted:
        return []
    meta = pod.get("metadata")
    if meta is None:
        return [{"op": "add", "path": "/metadata", "value": {"annotations": dict(wanted)}}]
    existing = meta.get("annotations")
    if existing is None:
        return [{"op": "add", "path": "/metadata/annotations", "value": dict(wanted)}]
    ops: list[dict[str, Any]] = []
    for key, value in wanted.items():
        if key not in existing:
            ops.append({"op": "add", "path": f"/metadata/annotations/{_escape(key)}", "value": value})
        elif existing[key] != value:
            ops.append({"op": "replace", "path": f"/metadata/annotations/{_escape(key)}", "value": value})
    return ops


def _resource_ops(pod: Mapping[str, Any], plan: _Plan, settings: WebhookSettings) -> list[dict[str, Any]]:
    """Operations that clear every container's resources and place the pod VM unit."""
    ops: list[dict[str, Any]] = []
    spec = pod["spec"]
    for list_name, count in plan.container_counts.items():
        for index in range(count):
            container = spec[list_name][index]
            wanted = _resources_for(list_name, index, settings)
            path = f"/spec/{list_name}/{index}/resources"
            if "resources" not in container:
                ops.append({"op": "add", "path": path, "value": wanted})
            elif container["resources"] != wanted:
                ops.append({"op": "replace", "path": path, "value": wanted})
    return ops


def mutation_patch(
    pod: dict[str, Any], settings: WebhookSettings = WebhookSettings()
) -> list[dict[str, Any]]:
    """RFC 6902 operations turning ``pod`` into ``mutate_pod(pod)``; [] when nothing changes."""
    plan = _plan(pod, settings)
    if not plan.matches:
        return []
    return _annotation_ops(pod, plan.annotations) + _resource_ops(pod, plan, settings)


# --------------------------------------------------------------------------- AdmissionReview


def _review_parts(review: object) -> tuple[str, str, object]:
    """Pull apiVersion, uid and the object out of a review, tolerating any shape."""
    if not isinstance(review, Mapping):
        return ADMISSION_V1, "", None
    api_version = review.get("apiVersion")
    if api_version not in _ADMISSION_VERSIONS:
        api_version = ADMISSION_V1
    request = review.get("request")
    if not isinstance(request, Mapping):
        return str(api_version), "", None
    uid = request.get("uid")
    return str(api_version), uid if isinstance(uid, str) else "", request.get("object")


def admission_review(api_version: str, response: dict[str, Any]) -> dict[str, Any]:
    """The AdmissionReview envelope around a ``response``."""
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}


def _refusal(uid: str, code: int, message: str) -> dict[str, Any]:
    return {"uid": uid, "allowed": False, "status": {"code": code, "message": message}}


def _compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def request_response(
    uid: str,
    obj: object,
    settings: WebhookSettings = WebhookSettings(),
    *,
    dumps: Callable[[Any], bytes] = _compact_json,
) -> dict[str, Any]:
    """The ``response`` to one request's object: the patch, or a 400 naming why it is no pod.

    Shared by :func:`review_response` and the HTTPS server (which passes a faster
    ``dumps``), so both answer alike. Raises only on a bug in the webhook itself.
    """
    if obj is None:
        return _refusal(uid, 400, "request.object is missing; there is no Pod to decode")
    try:
        ops = mutation_patch(obj, settings)  # type: ignore[arg-type]  # _plan checks the type
    except ConformanceInputError as exc:
        return _refusal(uid, 400, f"cannot decode request.object as a Pod: {exc}")
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if ops:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(dumps(ops)).decode("ascii")
    return response


def review_response(review: dict[str, Any], settings: WebhookSettings = WebhookSettings()) -> dict[str, Any]:
    """Answer an AdmissionReview as the webhook endpoint would; never raises."""
    api_version, uid, obj = _review_parts(review)
    try:
        response = request_response(uid, obj, settings)
    except Exception as exc:  # the endpoint must answer, whatever the input
        response = _refusal(uid, 500, f"internal error: {type(exc).__name__}: {exc}")
    return admission_review(api_version, response)
