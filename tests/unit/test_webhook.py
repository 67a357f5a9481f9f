"""The reference webhook against spec section 3 and CAA's worked values."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.errors import ConformanceInputError
from sim.peerpods.webhook import (
    ANN_GPUS,
    ANN_MEMORY,
    ANN_VCPUS,
    EXTENDED_RESOURCE_DEFAULT,
    TARGET_RUNTIMECLASS_DEFAULT,
    PodError,
    WebhookSettings,
    mutate_pod,
    mutation_patch,
    review_response,
)

VM = {"requests": {EXTENDED_RESOURCE_DEFAULT: "1"}, "limits": {EXTENDED_RESOURCE_DEFAULT: "1"}}


def container(
    name: str, requests: dict[str, Any] | None = None, limits: dict[str, Any] | None = None
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": name, "image": "quay.io/example/app:1", "resources": resources}


def make_pod(
    containers: list[dict[str, Any]],
    init: list[dict[str, Any]] | None = None,
    runtime_class: str | None = TARGET_RUNTIMECLASS_DEFAULT,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"containers": containers},
    }
    if runtime_class is not None:
        pod["spec"]["runtimeClassName"] = runtime_class
    if init is not None:
        pod["spec"]["initContainers"] = init
    if annotations is not None:
        pod["metadata"]["annotations"] = annotations
    return pod


def sizing(pod: dict[str, Any]) -> dict[str, str]:
    annotations = mutate_pod(pod)["metadata"].get("annotations", {})
    return {key: value for key, value in annotations.items() if key in (ANN_VCPUS, ANN_MEMORY, ANN_GPUS)}


DEFAULTS = WebhookSettings()


def assert_patch_equivalent(pod: dict[str, Any], webhook_settings: WebhookSettings = DEFAULTS) -> None:
    original = copy.deepcopy(pod)
    mutated = mutate_pod(pod, webhook_settings)
    ops = mutation_patch(pod, webhook_settings)
    assert pod == original, "input was modified"
    assert jsonpatch.apply_patch(pod, ops) == mutated
    assert (ops == []) == (mutated == pod)


# ----------------------------------------------------------------- worked values (spec 3)


def test_cpu_and_memory_requests_and_limits_use_the_limits() -> None:
    pod = make_pod([container("app", {"cpu": "2", "memory": "4Gi"}, {"cpu": "3", "memory": "5Gi"})])
    assert sizing(pod) == {ANN_VCPUS: "3", ANN_MEMORY: "5120"}


def test_cpu_request_only() -> None:
    assert sizing(make_pod([container("app", {"cpu": "2"})])) == {ANN_VCPUS: "2"}


def test_memory_request_only() -> None:
    assert sizing(make_pod([container("app", {"memory": "4Gi"})])) == {ANN_MEMORY: "4096"}


def test_fractional_cpu_rounds_up_limit() -> None:
    assert sizing(make_pod([container("app", {"cpu": "200m"}, {"cpu": "500m"})])) == {ANN_VCPUS: "1"}


def test_fractional_cpu_limit_rounds_up_to_two() -> None:
    assert sizing(make_pod([container("app", {"cpu": "200m"}, {"cpu": "1500m"})])) == {ANN_VCPUS: "2"}


def test_init_containers_and_gpus_are_summed() -> None:
    pod = make_pod(
        [
            container("a", {"cpu": "2", "memory": "4Gi"}, {"cpu": "3", "memory": "5Gi"}),
            container("b", {"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"}),
            container("gpu", {"cpu": "1", "nvidia.com/gpu": "1"}, {"cpu": "1", "nvidia.com/gpu": "1"}),
        ],
        init=[container("init", {"cpu": "1", "memory": "2Gi"}, {"cpu": "1", "memory": "2Gi"})],
    )
    assert sizing(pod) == {ANN_VCPUS: "6", ANN_MEMORY: "8192", ANN_GPUS: "1"}


# ----------------------------------------------------------------- the annotation rule


def test_limits_without_requests_give_no_cpu_annotation() -> None:
    assert sizing(make_pod([container("app", None, {"cpu": "4", "memory": "1Gi"})])) == {}


def test_limit_smaller_than_request_uses_the_request() -> None:
    assert sizing(make_pod([container("app", {"cpu": "3"}, {"cpu": "2"})])) == {ANN_VCPUS: "3"}


def test_quantity_forms_are_understood() -> None:
    pod = make_pod([container("app", {"cpu": "1000m", "memory": "0.5Gi"}, {"cpu": 1.5, "memory": "1e9"})])
    assert sizing(pod) == {ANN_VCPUS: "2", ANN_MEMORY: "954"}


def test_memory_in_mib_rounds_up() -> None:
    assert sizing(make_pod([container("app", {"memory": "1M"})])) == {ANN_MEMORY: "1"}


def test_gpu_only() -> None:
    assert sizing(make_pod([container("app", {"nvidia.com/gpu": 2})])) == {ANN_GPUS: "2"}


def test_no_resources_no_annotations_but_still_the_vm_unit() -> None:
    pod = make_pod([{"name": "app", "image": "x"}])
    mutated = mutate_pod(pod)
    assert "annotations" not in mutated["metadata"]
    assert mutated["spec"]["containers"][0]["resources"] == VM


def test_existing_annotations_are_kept_and_sizing_overwritten() -> None:
    pod = make_pod([container("app", {"cpu": "2"})], annotations={"keep": "me", ANN_VCPUS: "9"})
    assert mutate_pod(pod)["metadata"]["annotations"] == {"keep": "me", ANN_VCPUS: "2"}
    assert_patch_equivalent(pod)


def test_document_profile_skips_annotations() -> None:
    pod = make_pod([container("app", {"cpu": "2", "memory": "1Gi"})], annotations={"keep": "me"})
    mutated = mutate_pod(pod, WebhookSettings(annotations=False))
    assert mutated["metadata"]["annotations"] == {"keep": "me"}
    assert mutated["spec"]["containers"][0]["resources"] == VM


# ----------------------------------------------------------------- resources and runtime class


def test_resources_cleared_everywhere_and_unit_on_first_container() -> None:
    pod = make_pod(
        [container("a", {"cpu": "1"}, {"cpu": "1"}), container("b", {"memory": "1Gi"}), {"name": "c"}],
        init=[container("i", {"cpu": "1"}), {"name": "j"}],
    )
    spec = mutate_pod(pod)["spec"]
    assert [c["resources"] for c in spec["containers"]] == [VM, {}, {}]
    assert [c["resources"] for c in spec["initContainers"]] == [{}, {}]


def test_extended_resource_name_is_configurable() -> None:
    webhook_settings = WebhookSettings(extended_resource="example.com/pod-vm")
    pod = make_pod([container("app", {"cpu": "1"})])
    resources = mutate_pod(pod, webhook_settings)["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"example.com/pod-vm": "1"}, "limits": {"example.com/pod-vm": "1"}}
    assert_patch_equivalent(pod, webhook_settings)


@pytest.mark.parametrize("runtime_class", [None, "kata", "runc", "kata-remote-x"])
def test_other_runtime_classes_are_unchanged(runtime_class: str | None) -> None:
    pod = make_pod([container("app", {"cpu": "2"})], runtime_class=runtime_class)
    assert mutate_pod(pod) == pod
    assert mutate_pod(pod) is not pod
    assert mutation_patch(pod) == []


def test_target_runtime_class_is_configurable() -> None:
    pod = make_pod([container("app", {"cpu": "2"})], runtime_class="kata-remote-se")
    assert mutate_pod(pod) == pod
    assert sizing_with(pod, WebhookSettings(target_runtimeclass="kata-remote-se")) == {ANN_VCPUS: "2"}


def sizing_with(pod: dict[str, Any], webhook_settings: WebhookSettings) -> dict[str, str]:
    return dict(mutate_pod(pod, webhook_settings)["metadata"].get("annotations", {}))


def test_input_is_not_modified_and_result_shares_nothing() -> None:
    pod = make_pod([container("app", {"cpu": "2"}, {"cpu": "3"})], annotations={"a": "b"})
    original = copy.deepcopy(pod)
    mutated = mutate_pod(pod)
    assert pod == original
    mutated["spec"]["containers"][0]["image"] = "changed"
    assert pod["spec"]["containers"][0]["image"] == "quay.io/example/app:1"


def test_mutation_is_idempotent() -> None:
    pod = make_pod([container("app", {"cpu": "2"}, {"cpu": "3"})])
    once = mutate_pod(pod)
    assert mutate_pod(once) == once
    assert mutation_patch(once) == []


def test_resolve_flags_over_env_over_defaults() -> None:
    assert WebhookSettings.resolve({}) == WebhookSettings()
    assert (
        WebhookSettings.resolve({"TARGET_RUNTIMECLASS": "", "POD_VM_EXTENDED_RESOURCE": ""})
        == WebhookSettings()
    )
    env = {"TARGET_RUNTIMECLASS": "rc", "POD_VM_EXTENDED_RESOURCE": "x/y"}
    assert WebhookSettings.resolve(env) == WebhookSettings(target_runtimeclass="rc", extended_resource="x/y")
    assert WebhookSettings.resolve(env, extended_resource="a/b", annotations=False) == WebhookSettings(
        target_runtimeclass="rc", extended_resource="a/b", annotations=False
    )
    assert WebhookSettings.resolve(WebhookSettings(target_runtimeclass="rc").to_env()) == WebhookSettings(
        target_runtimeclass="rc"
    )
    changed = WebhookSettings(annotations=False).with_env("POD_VM_EXTENDED_RESOURCE", "x/y")
    assert changed == WebhookSettings(extended_resource="x/y", annotations=False)
    with pytest.raises(ConformanceInputError, match="TARGET_RUNTIMECLAS'"):
        WebhookSettings().with_env("TARGET_RUNTIMECLAS", "x")


# ----------------------------------------------------------------- errors


def test_bad_quantity_names_pod_container_index_and_field() -> None:
    pod = make_pod([container("app", {"cpu": "1"}), container("side", None, {"memory": "2x"})])
    with pytest.raises(PodError) as info:
        mutate_pod(pod)
    message = str(info.value)
    for part in ("demo/web", "containers[1]", "(side)", "resources.limits.memory", "'2x'"):
        assert part in message


def test_bad_quantity_in_init_container() -> None:
    pod = make_pod([container("app")], init=[container("setup", {"cpu": "1K"})])
    with pytest.raises(PodError, match=r"initContainers\[0\] \(setup\)\.resources\.requests\.cpu"):
        mutation_patch(pod)


def test_bad_quantity_is_refused_even_for_other_runtime_classes() -> None:
    pod = make_pod([container("app", {"cpu": "lots"})], runtime_class="runc")
    with pytest.raises(PodError):
        mutate_pod(pod)


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}},
        [],
        "pod",
        {"kind": "Pod", "apiVersion": "v1", "metadata": "x"},
        {"kind": "Pod", "apiVersion": "v1", "spec": {"containers": "x"}},
        {"kind": "Pod", "apiVersion": "v1", "spec": {"containers": [1]}},
        {"kind": "Pod", "apiVersion": "v1", "spec": {"runtimeClassName": 3, "containers": []}},
        {"kind": "Pod", "apiVersion": "v1", "metadata": {"annotations": {"a": 1}}},
        {"kind": "Pod", "apiVersion": "v1", "spec": {"runtimeClassName": "kata-remote", "containers": []}},
        {"kind": "Pod", "apiVersion": "v1", "spec": {"containers": [{"name": "a", "resources": []}]}},
    ],
)
def test_not_a_pod(obj: Any) -> None:
    with pytest.raises(PodError):
        mutate_pod(obj)
    assert issubclass(PodError, ConformanceInputError)


def test_pod_without_metadata_or_spec_is_fine() -> None:
    assert mutate_pod({"apiVersion": "v1", "kind": "Pod"}) == {"apiVersion": "v1", "kind": "Pod"}
    pod = {"spec": {"runtimeClassName": "kata-remote", "containers": [container("a", {"cpu": "1"})]}}
    assert mutate_pod(pod)["metadata"] == {"annotations": {ANN_VCPUS: "1"}}
    assert_patch_equivalent(pod)


# ----------------------------------------------------------------- patch


def test_patch_escapes_slash_and_tilde_in_keys() -> None:
    webhook_settings = WebhookSettings(extended_resource="a~b/vm")
    pod = make_pod([container("app", {"cpu": "2"})], annotations={"x": "y"})
    ops = mutation_patch(pod, webhook_settings)
    assert {"op": "add", "path": "/metadata/annotations/" + ANN_VCPUS, "value": "2"} in ops
    assert_patch_equivalent(pod, webhook_settings)


def test_patch_for_null_metadata_and_annotations() -> None:
    pod = make_pod([container("app", {"cpu": "2"})])
    pod["metadata"]["annotations"] = None
    assert_patch_equivalent(pod)
    pod["metadata"] = None
    assert_patch_equivalent(pod)
    del pod["metadata"]
    assert_patch_equivalent(pod)


def test_patch_adds_missing_resources_and_replaces_null() -> None:
    pod = make_pod([{"name": "a"}, {"name": "b", "resources": None}], init=[{"name": "i"}])
    ops = mutation_patch(pod)
    assert {"op": "add", "path": "/spec/containers/0/resources", "value": VM} in ops
    assert {"op": "replace", "path": "/spec/containers/1/resources", "value": {}} in ops
    assert_patch_equivalent(pod)


quantities = st.one_of(
    st.sampled_from(["0", "1", "2", "200m", "1500m", "1.5", "1e3", "4Gi", "0.5Gi", "1k", "128Mi", "1E"]),
    st.integers(min_value=0, max_value=64),
)
resource_maps = st.dictionaries(
    st.sampled_from(["cpu", "memory", "nvidia.com/gpu", "ephemeral-storage", "kata.peerpods.io/vm"]),
    quantities,
    max_size=4,
)
containers_strategy = st.builds(
    lambda name, req, lim, keep: {
        "name": name,
        **({"resources": {"requests": req, "limits": lim}} if keep else {}),
    },
    st.text("abcdef-", min_size=1, max_size=6),
    resource_maps,
    resource_maps,
    st.booleans(),
)
annotation_keys = st.sampled_from(["a", "a/b", "a~b", "~1", "/", ANN_VCPUS, ANN_MEMORY, "x.io/y~z"])
pods = st.builds(
    lambda containers, init, runtime_class, annotations, meta_kind: _assemble(
        containers, init, runtime_class, annotations, meta_kind
    ),
    st.lists(containers_strategy, min_size=1, max_size=4),
    st.one_of(st.none(), st.lists(containers_strategy, max_size=3)),
    st.sampled_from([None, "kata-remote", "runc"]),
    st.dictionaries(annotation_keys, st.text(max_size=5), max_size=4),
    st.sampled_from(["dict", "none", "absent", "null-annotations"]),
)


def _assemble(
    containers: list[dict[str, Any]],
    init: list[dict[str, Any]] | None,
    runtime_class: str | None,
    annotations: dict[str, str],
    meta_kind: str,
) -> dict[str, Any]:
    pod = make_pod(containers, init, runtime_class, annotations)
    if meta_kind == "none":
        pod["metadata"] = None
    elif meta_kind == "absent":
        del pod["metadata"]
    elif meta_kind == "null-annotations":
        pod["metadata"]["annotations"] = None
    return pod


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pods, st.booleans())
def test_patch_applied_to_original_gives_mutated_pod(pod: dict[str, Any], with_annotations: bool) -> None:
    webhook_settings = WebhookSettings(annotations=with_annotations)
    assert_patch_equivalent(pod, webhook_settings)
    # the library's diff reaches the same pod: the direct construction loses nothing
    expected = jsonpatch.make_patch(pod, mutate_pod(pod, webhook_settings)).apply(pod)
    assert jsonpatch.apply_patch(pod, mutation_patch(pod, webhook_settings)) == expected


# ----------------------------------------------------------------- AdmissionReview


def review(obj: Any, uid: str = "0d3f-uid") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"}, "object": obj},
    }


def test_review_allowed_with_base64_patch() -> None:
    pod = make_pod([container("app", {"cpu": "2", "memory": "4Gi"}, {"cpu": "3", "memory": "5Gi"})])
    answer = review_response(review(pod))
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "0d3f-uid"
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(response["patch"]))
    assert jsonpatch.apply_patch(pod, ops) == mutate_pod(pod)


def test_review_unchanged_has_no_patch() -> None:
    answer = review_response(review(make_pod([container("app")], runtime_class="runc")))
    assert answer["response"] == {"uid": "0d3f-uid", "allowed": True}


def test_review_non_pod_is_400_naming_the_problem() -> None:
    answer = review_response(review({"apiVersion": "apps/v1", "kind": "Deployment"}))
    response = answer["response"]
    assert response["uid"] == "0d3f-uid"
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    assert "Deployment" in response["status"]["message"]
    assert "patch" not in response


def test_review_bad_quantity_is_400_naming_container() -> None:
    response = review_response(review(make_pod([container("app", {"cpu": "two"})])))["response"]
    assert response["status"]["code"] == 400
    assert "containers[0] (app).resources.requests.cpu" in response["status"]["message"]


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"request": None},
        {"request": {"uid": "u"}},
        {"request": {"uid": 5, "object": []}},
        {"request": []},
    ],
)
def test_review_malformed_is_400(bad: dict[str, Any]) -> None:
    response = review_response(bad)["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    assert isinstance(response["uid"], str)


def test_review_v1beta1_is_answered_in_kind() -> None:
    request = review(make_pod([container("app")]))
    request["apiVersion"] = "admission.k8s.io/v1beta1"
    assert review_response(request)["apiVersion"] == "admission.k8s.io/v1beta1"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["apiVersion", "kind", "request", "x"]),
        json_values
        | st.fixed_dictionaries(
            {"uid": json_values, "object": json_values | pods},
        ),
        max_size=4,
    )
)
def test_review_never_raises(arbitrary: dict[str, Any]) -> None:
    answer = review_response(arbitrary)
    assert answer["kind"] == "AdmissionReview"
    assert isinstance(answer["response"]["allowed"], bool)
    json.dumps(answer)


# ----------------------------------------------------------------- Go decoder edge cases


def test_go_decoder_quirks_are_followed() -> None:
    pod = make_pod([container("app", {"cpu": " 2 ", "memory": None}, {"cpu": "m", "memory": "1Gi"})])
    assert sizing(pod) == {ANN_VCPUS: "2"}


def test_memory_beyond_int64_bytes_gives_caas_fallback_zero() -> None:
    pod = make_pod([container("app", {"memory": "8Ei"}, {"memory": "1e30"})])
    assert sizing(pod) == {ANN_MEMORY: "0"}


def test_cpu_beyond_int64_is_refused_not_garbage() -> None:
    pod = make_pod([container("app", {"cpu": "1e30"})])
    with pytest.raises(PodError, match=r"cpu sum .* outside the int64 range"):
        mutate_pod(pod)
    assert review_response(review(pod))["response"]["status"]["code"] == 400
    assert mutate_pod(pod, WebhookSettings(annotations=False))["spec"]["containers"][0]["resources"] == VM
