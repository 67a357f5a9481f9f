"""Differential testing of AdmissionReview endpoints: generated pods, compared outcomes.

A user certifying their own webhook build wants more than the feature files' examples:
hypothesis generates pods (containers and init containers, quantities in every notation
Kubernetes accepts, annotations, runtime classes), each is sent to both sides as the same
AdmissionReview, and the patched pods are compared. On a difference hypothesis shrinks
the pod, so the user sees the *smallest* pod on which the two disagree.

Outcomes are compared as kube-apiserver would act on them: when allowed, the patched pod
as the API server would store it (:func:`stored_form`: both patches applied, then the pod
normalised as Go decodes it - every quantity in its canonical form, empty objects and nulls
dropped - so that upstream's ``add /status {}`` or a rewritten ``0.0`` is no difference);
only "refused, with code N" when refused (two implementations word their messages
differently, and that is no difference in behaviour).

Each review is encoded once, to the bytes both sides receive (:func:`encode_review`): the
generator can spell a quantity as Go alone sees it - with a JSON escape (``"\u0031"``), as a
JSON number with an exponent (``1e3``), padded with Go's spaces - through :class:`RawJson`
values, and the reference judges those same bytes through the HTTPS server's handler.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis import strategies as st

from sim.jsonescapes import loads_keeping_numbers
from sim.kube.admission import MutatingWebhook, WebhookCallError
from sim.peerpods.webhook import WebhookSettings
from sim.podquantities import canonical_quantities

#: Calls an endpoint: an AdmissionReview and the bytes it is sent as in, AdmissionReview out
#: (raises WebhookCallError).
Endpoint = Callable[[dict[str, Any], bytes], dict[str, Any]]

#: The webhook the suite names when calling an endpoint during a diff.
DIFF_WEBHOOK = MutatingWebhook(name="diff.peerpods.io", rules=())

RUNTIME_CLASSES = [None, "kata-remote", "kata-remote", "kata", "kata-remote-se"]
DECIMAL_SUFFIXES = ["", "n", "u", "m", "k", "M", "G", "T"]
BINARY_SUFFIXES = ["Ki", "Mi", "Gi", "Ti"]
SIZING_KEYS = [
    "io.katacontainers.config.hypervisor.default_vcpus",
    "io.katacontainers.config.hypervisor.default_memory",
    "io.katacontainers.config.hypervisor.default_gpus",
]


@st.composite
def quantities(draw: st.DrawFn) -> str | int | float:
    """A quantity in any notation: plain, fractional, SI, binary, exponent, or a JSON number."""
    whole = draw(st.integers(min_value=0, max_value=4096))
    kind = draw(st.sampled_from(["int", "fraction", "decimal", "binary", "exponent", "json-number"]))
    if kind == "int":
        return str(whole)
    if kind == "fraction":
        return f"{whole}.{draw(st.integers(min_value=0, max_value=999))}"
    if kind == "decimal":
        return f"{whole}{draw(st.sampled_from(DECIMAL_SUFFIXES))}"
    if kind == "binary":
        return f"{whole}{draw(st.sampled_from(BINARY_SUFFIXES))}"
    if kind == "exponent":
        return f"{whole}{draw(st.sampled_from(['e', 'E']))}{draw(st.integers(min_value=-3, max_value=9))}"
    return draw(st.one_of(st.integers(min_value=0, max_value=64), st.sampled_from([0.5, 1.5, 2.25])))


def resource_lists() -> st.SearchStrategy[dict[str, Any]]:
    names = st.sampled_from(["cpu", "memory", "nvidia.com/gpu", "ephemeral-storage"])
    return st.dictionaries(names, quantities(), max_size=3)


@dataclass(frozen=True)
class RawJson:
    """A value written into the request body exactly as ``text`` (JSON), e.g. an escaped string."""

    text: str


#: Go's spaces around a quantity (trimmed; a control character, Python strip()'s too, is refused).
GO_PADDING = [" ", "\u00a0", "\u3000", "\u2009"]


@st.composite
def go_quantities(draw: st.DrawFn) -> Any:
    """A quantity spelled as only the raw bytes show: escaped, an exponent number, padded."""
    value = draw(quantities())
    kind = draw(st.sampled_from(["escaped", "exponent-number", "padded", "control", "plain"]))
    if kind == "escaped" and isinstance(value, str) and value:
        return RawJson('"' + "".join(f"\\u{ord(c):04x}" if c.isdigit() else c for c in value) + '"')
    if kind == "exponent-number":
        return RawJson(f"{draw(st.integers(1, 9))}e{draw(st.integers(0, 3))}")
    if kind == "padded" and isinstance(value, str):
        pad = draw(st.sampled_from(GO_PADDING))
        return f"{pad}{value}{pad}"
    if kind == "control" and isinstance(value, str):
        return "\x1f" + value
    return value


def raw_resource_lists() -> st.SearchStrategy[dict[str, Any]]:
    names = st.sampled_from(["cpu", "memory", "nvidia.com/gpu"])
    return st.dictionaries(names, go_quantities(), max_size=2)


@st.composite
def containers(draw: st.DrawFn, prefix: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": f"{prefix}{draw(st.integers(0, 9))}", "image": "busybox"}
    shape = draw(st.sampled_from(["none", "empty", "requests", "limits", "both"]))
    if shape == "empty":
        container["resources"] = {}
    elif shape != "none":
        resources: dict[str, Any] = {}
        if shape in ("requests", "both"):
            resources["requests"] = draw(resource_lists())
        if shape in ("limits", "both"):
            resources["limits"] = draw(resource_lists())
        container["resources"] = resources
    return container


@st.composite
def other_quantity_fields(draw: st.DrawFn, spec: dict[str, Any], values: st.SearchStrategy[Any]) -> None:
    """Quantities beyond the containers' that Go's decoder checks too (sim.podquantities)."""
    if draw(st.integers(0, 4)) == 0:
        spec["ephemeralContainers"] = [
            {
                "name": "debug",
                "image": "busybox",
                "resources": {
                    "requests": draw(st.dictionaries(st.sampled_from(["cpu", "memory"]), values, max_size=2))
                },
            }
        ]
    if draw(st.integers(0, 4)) == 0:
        spec["overhead"] = draw(st.dictionaries(st.sampled_from(["cpu", "memory"]), values, max_size=2))
    if draw(st.integers(0, 4)) == 0:
        spec["volumes"] = [{"name": "scratch", "emptyDir": {"sizeLimit": draw(values)}}]


@st.composite
def pods(draw: st.DrawFn, raw: bool = False) -> dict[str, Any]:
    """A pod as a user might submit it: the parts the webhook reads are varied.

    ``raw``: quantities may also be :class:`RawJson` (for :func:`encode_review` only).
    """
    metadata: dict[str, Any] = {"name": "p", "namespace": "default"}
    if draw(st.booleans()):
        keys = st.sampled_from([*SIZING_KEYS, "example.com/note", "app"])
        metadata["annotations"] = draw(
            st.dictionaries(keys, st.sampled_from(["1", "2", "x", ""]), max_size=3)
        )
    spec: dict[str, Any] = {"containers": draw(st.lists(containers("c"), min_size=1, max_size=3))}
    init = draw(st.lists(containers("i"), max_size=2))
    if init:
        spec["initContainers"] = init
    values = go_quantities() if raw else quantities()
    if raw and draw(st.booleans()):
        container = spec["containers"][0]
        container["resources"] = {
            "requests": draw(raw_resource_lists()),
            "limits": draw(raw_resource_lists()),
        }
    draw(other_quantity_fields(spec, values))
    runtime_class = draw(st.sampled_from(RUNTIME_CLASSES))
    if runtime_class is not None:
        spec["runtimeClassName"] = runtime_class
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def review_for(pod: dict[str, Any]) -> dict[str, Any]:
    """The AdmissionReview a CREATE of ``pod`` produces (fixed uid: answers are compared)."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-4000-8000-000000000000",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": pod["metadata"]["namespace"],
            "operation": "CREATE",
            "userInfo": {"username": "conformance-diff"},
            "object": pod,
            "dryRun": False,
        },
    }


def encode_review(review: Any, *, shown: bool = False) -> bytes:
    """The bytes a review is sent as: compact JSON, non-ASCII as UTF-8, :class:`RawJson` verbatim.

    ``shown``: each RawJson as a JSON string of its text instead (to print a pod that holds them).
    """
    raws: list[str] = []

    def place(value: Any) -> Any:
        if isinstance(value, RawJson):
            raws.append(value.text)
            return f"\x00raw{len(raws) - 1}\x00"
        if isinstance(value, dict):
            return {key: place(item) for key, item in value.items()}
        if isinstance(value, list):
            return [place(item) for item in value]
        return value

    text = json.dumps(place(review), separators=(",", ":"), ensure_ascii=False)
    for index, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00raw{index}\x00"), json.dumps(raw) if shown else raw, 1)
    return text.encode()


def _without_empties(value: Any) -> Any:
    """Drop object members that are null, {} or [] (after their own members), as Go's omitempty does."""
    if isinstance(value, dict):
        kept = {key: _without_empties(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item is not None and item != {} and item != []}
    if isinstance(value, list):
        return [_without_empties(item) for item in value]
    return value


def stored_form(pod: Any) -> Any:
    """``pod`` as kube-apiserver would store it after decoding it into ``corev1.Pod``.

    Go's round trip writes every quantity in canonical form (``0.0`` -> ``"0"``, ``1.5`` ->
    ``"1500m"``) and drops what is empty (``status: {}``, ``creationTimestamp: null``, an empty
    ``resources``), so two patches that differ only there store the same pod.
    """
    return _without_empties(canonical_quantities(pod) if isinstance(pod, dict) else pod)


def outcome(endpoint: Endpoint, review: dict[str, Any], body: bytes) -> dict[str, Any]:
    """What kube-apiserver would make of the endpoint's answer to ``body``, as a comparable value."""
    try:
        response = endpoint(review, body)["response"]
    except WebhookCallError as exc:
        return {"call failed": str(exc)}
    if not response.get("allowed"):
        return {"refused with code": (response.get("status") or {}).get("code")}
    pod = loads_keeping_numbers(body)["request"]["object"]  # the pod as the endpoint decoded it
    if "patch" not in response:
        return {"admitted": stored_form(pod)}
    try:
        ops = json.loads(base64.b64decode(response["patch"], validate=True))
        return {"admitted": stored_form(jsonpatch.apply_patch(pod, ops, in_place=False))}
    except (ValueError, TypeError, jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        return {"patch does not apply": str(exc)}


def reference_endpoint(settings: WebhookSettings) -> Endpoint:
    """The suite's own webhook, in process, judging the same bytes the HTTPS server would."""
    from sim.server.limits import ServerLimits
    from sim.server.review import ReviewHandler

    handler = ReviewHandler(settings, ServerLimits())

    def call(review: dict[str, Any], body: bytes) -> dict[str, Any]:
        reply = handler.review(body)
        if reply.status != 200:
            raise WebhookCallError(f"reference: HTTP {reply.status}: {reply.body[:200]!r}")
        answer: dict[str, Any] = json.loads(reply.body)
        return answer

    return call


@dataclass
class Difference:
    """The smallest pod found on which the two sides disagree, and what each made of it."""

    pod: dict[str, Any]  # as sent; a value written verbatim is shown as a string of its JSON text
    left: dict[str, Any]
    right: dict[str, Any]


class _Differs(Exception):
    def __init__(self, difference: Difference) -> None:
        super().__init__("endpoints differ")
        self.difference = difference


@dataclass
class DiffResult:
    """How many pods were tried, and the smallest difference found (None: none found)."""

    tried: int
    difference: Difference | None


def compare(left: Endpoint, right: Endpoint, *, examples: int, random_seed: int) -> DiffResult:
    """Search ``examples`` generated pods for a difference; shrink the first one found."""
    tried = 0

    @seed(random_seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(pods(raw=True))
    def search(pod: dict[str, Any]) -> None:
        nonlocal tried
        tried += 1
        review = review_for(pod)
        body = encode_review(review)
        a, b = outcome(left, review, body), outcome(right, review, body)
        if a != b:
            shown = json.loads(encode_review(pod, shown=True))
            raise _Differs(Difference(shown, a, b))

    try:
        search()
    except _Differs as found:
        return DiffResult(tried, found.difference)
    return DiffResult(tried, None)


def https_endpoint(url: str, ca: str | None, timeout: float = 10.0) -> Endpoint:
    """An endpoint called over HTTPS exactly as the webhook target calls it."""
    from sim.harness.targets.webhook import HttpsWebhookCaller

    caller = HttpsWebhookCaller(url, Path(ca) if ca else None, timeout)
    return lambda review, body: caller.call_with_body(DIFF_WEBHOOK, review, body)
