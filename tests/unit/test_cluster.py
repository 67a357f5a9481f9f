"""The in-process cluster: admission chain, RuntimeClass overhead, scheduling, adaptors, pod VMs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.kube.admission import (
    InProcessWebhookCaller,
    MutatingWebhook,
    WebhookCallError,
    load_webhook_configuration,
)
from sim.kube.cluster import NAMESPACE_NAME_LABEL, AdmissionDenied, Cluster, ClusterError
from sim.peerpods.adaptor import AdaptorConfigError
from sim.peerpods.providers.memory import MemoryProvider

ROOT = Path(__file__).resolve().parents[2]
VM = "kata.peerpods.io/vm"


def insufficient(nodes: int) -> str:
    """kube-scheduler's Unschedulable message when no node has a kata.peerpods.io/vm left."""
    return (
        f"0/{nodes} nodes are available: {nodes} Insufficient {VM}. preemption: 0/{nodes} nodes are "
        f"available: {nodes} No preemption victims found for incoming pod."
    )


def fixture(*parts: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "fixtures").joinpath(*parts).read_text())
    return document


def profile(name: str) -> list[MutatingWebhook]:
    path = ROOT / "fixtures" / "admission" / f"{name}-mwc.yaml"
    return load_webhook_configuration(path.read_text(), source=path.name)


class UnreachableCaller:
    """Fake: every call fails as a refused connection does."""

    def __call__(self, webhook: MutatingWebhook, review: dict[str, Any]) -> dict[str, Any]:
        raise WebhookCallError("dial tcp 172.30.0.10:443: connect: connection refused")


def make_cluster(tmp_path: Path, *, limit: str | None = None, caller: Any = None, **kwargs: Any) -> Cluster:
    cluster = Cluster(
        profile("caa-chart"), caller or InProcessWebhookCaller(), MemoryProvider(tmp_path), **kwargs
    )
    cluster.apply_runtime_class(fixture("cluster", "runtimeclass-kata-remote.yaml"))
    set_cm(cluster, limit)
    for name in ("workloads", "kube-system"):
        cluster.create_namespace(name)
    return cluster


def set_cm(cluster: Cluster, limit: str | None, **extra: str) -> None:
    cm = fixture("cluster", "peer-pods-cm.yaml")
    cm["data"].pop("PEERPODS_LIMIT_PER_NODE")
    if limit is not None:
        cm["data"]["PEERPODS_LIMIT_PER_NODE"] = limit
    cm["data"].update(extra)
    cluster.apply_configmap(cm)


def pod(
    name: str, ns: str = "workloads", runtime_class: str | None = "kata-remote", **resources: Any
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "registry.example/app:1"}
    if resources:
        container["resources"] = resources
    spec: dict[str, Any] = {"containers": [container]}
    if runtime_class:
        spec["runtimeClassName"] = runtime_class
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": spec}


# --------------------------------------------------------------------------- namespaces


def test_namespaces_carry_their_immutable_name_label(tmp_path: Path) -> None:
    cluster = Cluster(provider=MemoryProvider(tmp_path))
    created = cluster.create_namespace("team-a", {"tier": "gold", NAMESPACE_NAME_LABEL: "spoofed"})
    assert created["metadata"]["labels"] == {"tier": "gold", NAMESPACE_NAME_LABEL: "team-a"}
    assert cluster.has_namespace("team-a") and not cluster.has_namespace("team-b")
    with pytest.raises(ClusterError, match="immutable"):
        cluster.set_namespace_labels("team-a", {NAMESPACE_NAME_LABEL: "other"})
    assert cluster.set_namespace_labels("team-a", {})["metadata"]["labels"] == {
        NAMESPACE_NAME_LABEL: "team-a"
    }
    with pytest.raises(ClusterError, match="already exists"):
        cluster.create_namespace("team-a")
    with pytest.raises(ClusterError, match="not a DNS label"):
        cluster.create_namespace("Team_A")


# --------------------------------------------------------------------------- a peer pod end to end


def test_a_peer_pod_is_mutated_charged_overhead_and_gets_a_vm(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    cluster.add_node("worker-0")
    assert cluster.node_capacity("worker-0")[VM] == "10"
    assert cluster.node_allocatable("worker-0")[VM] == "10"
    state = cluster.create_pod(pod("web", requests={"cpu": "1"}, limits={"cpu": "2"}))
    assert (state.phase, state.node, state.reason) == ("Running", "worker-0", None)
    assert state.pod["spec"]["overhead"] == {"cpu": "250m", "memory": "120Mi"}
    assert state.pod["spec"]["containers"][0]["resources"] == {"requests": {VM: "1"}, "limits": {VM: "1"}}
    assert state.pod["spec"]["nodeName"] == "worker-0"
    assert cluster.node_allocated("worker-0") == {"cpu": "250m", VM: "1", "memory": "120Mi", "pods": "1"}
    assert state.vm and state.vm.startswith("podvm-web-")
    facts = cluster.pod_vm("workloads", "web")
    assert (facts["vcpus"], facts["memory_mib"]) == (2, 8192)
    assert cluster.guest_report("workloads", "web").dummy
    assert cluster.pod_vms() == [state.vm]


def test_ordinary_pods_get_no_vm_and_no_overhead(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    cluster.add_node("worker-0")
    state = cluster.create_pod(pod("plain", runtime_class=None, requests={"cpu": "1"}))
    assert state.phase == "Running" and state.vm is None and "overhead" not in state.pod["spec"]
    assert cluster.node_allocated("worker-0") == {"cpu": "1", "pods": "1"}


def test_limit_then_pending_with_reason_then_freed_on_delete(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, limit="2")
    cluster.add_node("worker-0")
    states = [cluster.create_pod(pod(f"peer-{i}")) for i in range(3)]
    assert [s.phase for s in states] == ["Running", "Running", "Pending"]
    assert states[2].reason == insufficient(1)
    vm = states[0].vm
    cluster.delete_pod("workloads", "peer-0")
    assert vm not in cluster.pod_vms()
    waiting = cluster.get_pod("workloads", "peer-2")
    assert waiting.phase == "Running" and waiting.reason is None and waiting.vm
    assert cluster.node_allocated("worker-0")[VM] == "2"


def test_default_limit_is_ten(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    cluster.add_node("worker-0")
    phases = [cluster.create_pod(pod(f"peer-{i}")).phase for i in range(11)]
    assert phases.count("Running") == 10 and phases[-1] == "Pending"


def test_the_limit_applies_per_node(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, limit="2")
    for index in range(3):
        cluster.add_node(f"worker-{index}")
    states = [cluster.create_pod(pod(f"peer-{i}")) for i in range(7)]
    assert [s.phase for s in states].count("Running") == 6
    assert states[-1].reason == insufficient(3)
    assert all(cluster.node_allocated(f"worker-{i}")[VM] == "2" for i in range(3))


def test_negative_limit_advertises_nothing(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, limit="-1")
    cluster.add_node("worker-0")
    assert VM not in cluster.node_capacity("worker-0") and VM not in cluster.node_allocatable("worker-0")
    state = cluster.create_pod(pod("homeless"))
    assert state.phase == "Pending" and state.reason == insufficient(1)


def test_a_changed_limit_needs_a_restart_and_then_unblocks_waiting_pods(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, limit="1")
    cluster.add_node("worker-0")
    cluster.create_pod(pod("first"))
    assert cluster.create_pod(pod("second")).phase == "Pending"
    set_cm(cluster, "5")
    assert cluster.node_capacity("worker-0")[VM] == "1"
    assert cluster.get_pod("workloads", "second").phase == "Pending"
    cluster.restart_adaptors()
    assert cluster.node_capacity("worker-0")[VM] == "5"
    assert cluster.get_pod("workloads", "second").phase == "Running"
    set_cm(cluster, "-1")
    cluster.restart_adaptors()
    assert VM not in cluster.node_capacity("worker-0")
    assert cluster.get_pod("workloads", "first").phase == "Running", "bound pods are not evicted"


def test_a_node_added_later_starts_with_the_current_config_map(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, limit="1")
    cluster.add_node("worker-0")
    set_cm(cluster, "3")
    cluster.add_node("worker-1")
    assert cluster.node_capacity("worker-0")[VM] == "1" and cluster.node_capacity("worker-1")[VM] == "3"


def test_a_non_integer_limit_is_refused_naming_the_key(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, limit="2")
    cluster.add_node("worker-0")
    set_cm(cluster, "ten")
    with pytest.raises(AdaptorConfigError, match="PEERPODS_LIMIT_PER_NODE: 'ten' is not an integer"):
        cluster.restart_adaptors()
    assert cluster.node_capacity("worker-0")[VM] == "2", "a bad config leaves nodes as they were"
    with pytest.raises(AdaptorConfigError, match="PEERPODS_LIMIT_PER_NODE"):
        cluster.add_node("worker-1")
    assert cluster.nodes() == ["worker-0"]


def test_pending_pod_waits_for_a_new_node(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    state = cluster.create_pod(pod("early"))
    assert state.phase == "Pending" and state.reason == "no nodes available to schedule pods"
    cluster.add_node("worker-0")
    assert cluster.get_pod("workloads", "early").phase == "Running"


# --------------------------------------------------------------------------- namespace exclusion


def test_a_peer_pod_in_an_excluded_namespace_escapes_the_accounting(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, limit="1")
    cluster.add_node("worker-0")
    counted = cluster.create_pod(pod("counted"))
    escaped = cluster.create_pod(pod("escaped", ns="kube-system"))
    assert counted.phase == escaped.phase == "Running"
    assert escaped.vm, "it still runs as a peer pod, in a VM"
    assert "resources" not in escaped.pod["spec"]["containers"][0]
    assert cluster.node_allocated("worker-0")[VM] == "1"
    assert cluster.node_allocated("worker-0")["cpu"] == "500m", "both pay the RuntimeClass overhead"


def test_declaring_the_resource_in_an_excluded_namespace_is_counted(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, limit="1")
    cluster.add_node("worker-0")
    declared = cluster.create_pod(pod("declared", ns="kube-system", requests={VM: "1"}, limits={VM: "1"}))
    third = cluster.create_pod(pod("third", ns="kube-system", requests={VM: "1"}, limits={VM: "1"}))
    assert declared.phase == "Running" and third.phase == "Pending"
    assert third.reason == insufficient(1)


def test_openshift_profile_excludes_its_list(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    cluster.webhooks = profile("openshift")
    cluster.add_node("worker-0")
    cluster.create_namespace("openshift-monitoring")
    state = cluster.create_pod(pod("p", ns="openshift-monitoring", requests={"cpu": "1"}))
    assert state.pod["spec"]["containers"][0]["resources"] == {"requests": {"cpu": "1"}}


# --------------------------------------------------------------------------- failure policy and policy


def test_unreachable_webhook_under_fail_refuses(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, caller=UnreachableCaller())
    with pytest.raises(AdmissionDenied, match=r'failed calling webhook "mwebhook\.peerpods\.io"') as caught:
        cluster.create_pod(pod("orphan"))
    assert caught.value.code == 500
    with pytest.raises(ClusterError):
        cluster.get_pod("workloads", "orphan")


def test_unreachable_webhook_under_ignore_admits_unmutated(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, caller=UnreachableCaller())
    cluster.webhooks = [replace(w, failure_policy="Ignore") for w in cluster.webhooks]
    cluster.add_node("worker-0")
    state = cluster.create_pod(pod("orphan"))
    assert state.phase == "Running" and VM not in cluster.node_allocated("worker-0")


def test_policy_allows_peer_pods_only_in_chosen_namespaces(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    cluster.create_namespace("confidential")
    cluster.add_node("worker-0")
    cluster.apply_admission_policy(["confidential"])
    assert cluster.create_pod(pod("allowed", ns="confidential")).phase == "Running"
    with pytest.raises(AdmissionDenied, match="namespace kube-system") as caught:
        cluster.create_pod(pod("sneaky", ns="kube-system"))
    assert 'pods "sneaky" is forbidden: ValidatingAdmissionPolicy' in str(caught.value)
    assert cluster.create_pod(pod("coredns", ns="kube-system", runtime_class=None)).phase == "Running"


# --------------------------------------------------------------------------- provider failures


class FakeBrokenProvider(MemoryProvider):
    """Fake: creation always fails, after which nothing exists."""

    def create_instance(self, spec: Any) -> str:
        raise RuntimeError("libvirt: no space left on device")


def test_provider_failure_fails_the_sandbox_and_the_pod_keeps_its_unit(tmp_path: Path) -> None:
    """kubelet keeps a pod whose sandbox did not start Pending on its node (and retries)."""
    cluster = Cluster(profile("caa-chart"), InProcessWebhookCaller(), FakeBrokenProvider(tmp_path))
    cluster.apply_runtime_class(fixture("cluster", "runtimeclass-kata-remote.yaml"))
    cluster.create_namespace("workloads")
    cluster.add_node("worker-0")
    state = cluster.create_pod(pod("doomed"))
    assert state.phase == "Pending" and state.node == "worker-0"
    assert (state.reason or "").startswith("FailedCreatePodSandBox: ")
    assert "no space left on device" in (state.reason or "")
    assert state.vm is None and cluster.pod_vms() == []
    assert cluster.node_allocated("worker-0")["kata.peerpods.io/vm"] == "1"
    cluster.delete_pod("workloads", "doomed")
    assert cluster.node_allocated("worker-0") == {}


# --------------------------------------------------------------------------- API server checks


def test_duplicate_and_unknown_namespace_and_missing_pod(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    cluster.create_pod(pod("web"))
    with pytest.raises(AdmissionDenied, match='pods "web" already exists') as caught:
        cluster.create_pod(pod("web"))
    assert caught.value.code == 409
    with pytest.raises(AdmissionDenied, match='namespaces "nowhere" not found'):
        cluster.create_pod(pod("web", ns="nowhere"))
    with pytest.raises(ClusterError, match='pods "ghost" not found'):
        cluster.get_pod("workloads", "ghost")
    with pytest.raises(ClusterError, match='pods "ghost" not found'):
        cluster.delete_pod("workloads", "ghost")
    with pytest.raises(ClusterError, match='nodes "nope" not found'):
        cluster.node_capacity("nope")


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [
        (
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "workloads"}, "spec": {}},
            "name or generateName",
        ),
        (
            pod("no-image") | {"spec": {"containers": [{"name": "app"}]}},
            'Pod "no-image" is invalid: spec.containers[0].image',
        ),
        (pod("empty") | {"spec": {"containers": []}}, 'Pod "empty" is invalid: spec.containers: Required'),
        (pod("Bad_Name"), "metadata.name: Invalid value"),
        ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}, "expected kind Pod"),
    ],
)
def test_invalid_pods_are_refused_naming_the_pod(
    tmp_path: Path, manifest: dict[str, Any], fragment: str
) -> None:
    cluster = make_cluster(tmp_path)
    with pytest.raises(AdmissionDenied) as caught:
        cluster.create_pod(manifest)
    assert fragment in str(caught.value)


def test_unparsable_quantity_is_refused_naming_container_and_field(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    with pytest.raises(AdmissionDenied) as caught:
        cluster.create_pod(pod("broken", requests={"cpu": "two"}, limits={"cpu": "2"}))
    assert caught.value.code == 400
    assert "(app).resources.requests.cpu: 'two'" in str(caught.value)


def test_request_above_limit_is_invalid_unless_the_webhook_clears_it(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    cluster.add_node("worker-0")
    assert cluster.create_pod(pod("peer", requests={"cpu": "3"}, limits={"cpu": "2"})).phase == "Running"
    with pytest.raises(AdmissionDenied, match="must be less than or equal to cpu limit"):
        cluster.create_pod(pod("plain", runtime_class=None, requests={"cpu": "3"}, limits={"cpu": "2"}))


def test_runtime_class_overhead_must_match(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    manifest = pod("liar")
    manifest["spec"]["overhead"] = {"cpu": "1m"}
    with pytest.raises(AdmissionDenied, match="Overhead doesn't match"):
        cluster.create_pod(manifest)
    manifest["spec"]["overhead"] = {"cpu": "0.25", "memory": "120Mi"}
    assert cluster.create_pod(manifest).pod["spec"]["overhead"] == {"cpu": "250m", "memory": "120Mi"}


def test_unknown_runtime_class_lenient_by_default_strict_on_request(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    cluster.add_node("worker-0")
    state = cluster.create_pod(pod("local", runtime_class="kata"))
    assert state.phase == "Running" and state.vm is None
    strict = make_cluster(tmp_path / "strict", strict_runtime_classes=True)
    with pytest.raises(AdmissionDenied, match='RuntimeClass "kata" not found'):
        strict.create_pod(pod("local", runtime_class="kata"))


def test_requests_default_from_limits_when_asked(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, default_requests_from_limits=True)
    cluster.add_node("worker-0")
    state = cluster.create_pod(pod("sized", limits={"cpu": "3"}))
    assert state.pod["metadata"]["annotations"]["io.katacontainers.config.hypervisor.default_vcpus"] == "3"


class LimitsOnlyCaller:
    """Fake webhook: patches the first container to carry a limit and no request."""

    def __call__(self, webhook: MutatingWebhook, review: dict[str, Any]) -> dict[str, Any]:
        import base64
        import json

        patch = [{"op": "add", "path": "/spec/containers/0/resources", "value": {"limits": {"cpu": "2"}}}]
        response = {
            "uid": review["request"]["uid"],
            "allowed": True,
            "patchType": "JSONPatch",
            "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
        }
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def test_a_webhooks_patched_pod_is_defaulted_again(tmp_path: Path) -> None:
    # kube-apiserver's mutating dispatcher runs the defaulters over the patched object
    # (k8s.io/apiserver v0.37.2, pkg/admission/plugin/webhook/mutating/dispatcher.go), so a
    # limit a webhook adds without a request becomes the request too.
    cluster = make_cluster(tmp_path, caller=LimitsOnlyCaller(), default_requests_from_limits=True)
    state = cluster.create_pod(pod("patched"))
    resources = state.pod["spec"]["containers"][0]["resources"]
    assert resources == {"limits": {"cpu": "2"}, "requests": {"cpu": "2"}}


def test_generate_name(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    manifest = pod("x")
    manifest["metadata"] = {"generateName": "web-", "namespace": "workloads"}
    state = cluster.create_pod(manifest)
    assert state.pod["metadata"]["name"].startswith("web-") and len(state.pod["metadata"]["name"]) > 4


def test_update_goes_through_update_rules(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    cluster.add_node("worker-0")
    cluster.create_pod(pod("peer"))
    cluster.create_pod(pod("plain-peer", ns="kube-system", requests={"cpu": "1"}))
    cluster.webhooks = profile("openshift")
    resubmitted = cluster.get_pod("workloads", "peer").pod
    resubmitted["spec"]["containers"][0]["image"] = "registry.example/app:2"
    updated = cluster.create_pod(resubmitted, operation="UPDATE")
    assert updated.pod["spec"]["containers"][0]["image"] == "registry.example/app:2"
    assert updated.phase == "Running"
    cluster.create_namespace("team-b")
    cluster.webhooks = profile("caa-chart")
    cluster.create_pod(pod("late", ns="team-b", runtime_class="kata-remote"))
    assert cluster.create_pod(cluster.get_pod("team-b", "late").pod, operation="UPDATE").phase == "Running"


def test_update_that_a_webhook_would_mutate_is_forbidden(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, caller=UnreachableCaller())
    cluster.webhooks = [replace(w, failure_policy="Ignore") for w in cluster.webhooks]
    cluster.add_node("worker-0")
    cluster.create_pod(pod("unmutated", requests={"cpu": "1"}))  # webhook down: stored as written
    cluster.caller = InProcessWebhookCaller()
    cluster.webhooks = profile("openshift")
    with pytest.raises(AdmissionDenied, match="pod updates may not change fields"):
        cluster.create_pod(cluster.get_pod("workloads", "unmutated").pod, operation="UPDATE")


def test_close_deletes_every_vm(tmp_path: Path) -> None:
    provider = MemoryProvider(tmp_path)
    cluster = Cluster(profile("caa-chart"), InProcessWebhookCaller(), provider)
    cluster.create_namespace("workloads")
    cluster.add_node("worker-0")
    cluster.create_pod(pod("a"))
    cluster.close()
    assert provider.instances() == [] and cluster.pods() == []


def test_a_pod_naming_its_node_is_admitted_by_that_kubelet_not_the_scheduler(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, limit="1")
    cluster.add_node("worker-0")
    cluster.add_node("worker-1")
    pinned = pod("pinned")
    pinned["spec"]["nodeName"] = "worker-1"
    assert cluster.create_pod(pinned).node == "worker-1"
    again = pod("again")
    again["spec"]["nodeName"] = "worker-1"
    refused = cluster.create_pod(again)
    assert refused.phase == "Failed" and refused.vm is None
    assert refused.reason is not None and refused.reason.startswith(f"OutOf{VM}: Pod was rejected")
    assert cluster.node_allocated("worker-1")[VM] == "1" and VM not in cluster.node_allocated("worker-0")


def test_a_pod_naming_a_missing_node_waits_for_it(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path)
    early = pod("early")
    early["spec"]["nodeName"] = "worker-9"
    assert cluster.create_pod(early).phase == "Pending"
    cluster.add_node("worker-0")
    assert cluster.get_pod("workloads", "early").phase == "Pending"
    cluster.add_node("worker-9")
    assert cluster.get_pod("workloads", "early").node == "worker-9"


def test_close_starts_nothing_new(tmp_path: Path) -> None:
    provider = MemoryProvider(tmp_path)
    created: list[str] = []
    original = provider.create_instance

    def counting(spec: Any) -> str:
        created.append(spec.pod_name)
        return original(spec)

    provider.create_instance = counting  # type: ignore[method-assign]
    cluster = Cluster(profile("caa-chart"), InProcessWebhookCaller(), provider)
    cluster.apply_configmap({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "peer-pods-cm"},
                             "data": {"PEERPODS_LIMIT_PER_NODE": "1"}})  # fmt: skip
    cluster.create_namespace("workloads")
    cluster.add_node("worker-0")
    for index in range(3):
        cluster.create_pod(pod(f"p{index}"))
    cluster.close()
    assert created == ["p0"]
