"""Differential testing of AdmissionReview endpoints: generated pods, compared outcomes.

A user certifying their own webhook build wants more than the feature files' examples:
hypothesis generates pods (containers and init containers, quantities in every notation
Kubernetes accepts, annotations, runtime classes), each is sent to both sides as the same
AdmissionReview, and the patched pods are compared. On a difference hypothesis shrinks
the pod, so the user sees the *smallest* pod on which the two disagree.

Outcomes are compared as kube-apiserver would act on them: the patched pod when allowed;
only "refused, with code N" when refused (two implementations word their messages
differently, and that is no difference in behaviour).
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

from sim.kube.admission import MutatingWebhook, WebhookCallError
from sim.peerpods.webhook import WebhookSettings, review_response

#: Calls an endpoint: AdmissionReview in, AdmissionReview out (raises WebhookCallError).
Endpoint = Callable[[dict[str, Any]], dict[str, Any]]

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
def pods(draw: st.DrawFn) -> dict[str, Any]:
    """A pod as a user might submit it: the parts the webhook reads are varied."""
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


def outcome(endpoint: Endpoint, pod: dict[str, Any]) -> dict[str, Any]:
    """What kube-apiserver would make of the endpoint's answer, as a comparable value."""
    try:
        response = endpoint(review_for(pod))["response"]
    except WebhookCallError as exc:
        return {"call failed": str(exc)}
    if not response.get("allowed"):
        return {"refused with code": (response.get("status") or {}).get("code")}
    if "patch" not in response:
        return {"admitted": pod}
    try:
        ops = json.loads(base64.b64decode(response["patch"], validate=True))
        return {"admitted": jsonpatch.apply_patch(pod, ops, in_place=False)}
    except (ValueError, TypeError, jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        return {"patch does not apply": str(exc)}


def reference_endpoint(settings: WebhookSettings) -> Endpoint:
    """The suite's own webhook, in process."""
    return lambda review: review_response(review, settings)


@dataclass
class Difference:
    """The smallest pod found on which the two sides disagree, and what each made of it."""

    pod: dict[str, Any]
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
    @given(pods())
    def search(pod: dict[str, Any]) -> None:
        nonlocal tried
        tried += 1
        a, b = outcome(left, pod), outcome(right, pod)
        if a != b:
            raise _Differs(Difference(pod, a, b))

    try:
        search()
    except _Differs as found:
        return DiffResult(tried, found.difference)
    return DiffResult(tried, None)


def https_endpoint(url: str, ca: str | None, timeout: float = 10.0) -> Endpoint:
    """An endpoint called over HTTPS exactly as the webhook target calls it."""
    from sim.harness.targets.webhook import HttpsWebhookCaller

    caller = HttpsWebhookCaller(url, Path(ca) if ca else None, timeout)
    return lambda review: caller(DIFF_WEBHOOK, review)
