"""Where kube-apiserver v1.37.2 and kube-scheduler v1.37.2 (the cluster target) answered
differently from the reference target, the reference now answers as they do."""

from __future__ import annotations

from typing import Any

from sim.harness.targets.reference import ReferenceTarget

VM = "kata.peerpods.io/vm"


def pod(name: str, runtime_class: str | None = "kata-remote", **spec: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "w"},
        "spec": {"containers": [{"name": "app", "image": "app"}], **spec},
    }
    if runtime_class:
        manifest["spec"]["runtimeClassName"] = runtime_class
    return manifest


def test_a_pod_naming_an_unknown_runtime_class_is_refused() -> None:
    env = ReferenceTarget().open_environment()
    try:
        env.create_namespace("w")
        outcome = env.create_pod(pod("x", "nosuch"))
        assert not outcome.admitted
        assert outcome.denial == 'pods "x" is forbidden: pod rejected: RuntimeClass "nosuch" not found'
        assert env.create_pod(pod("local", "kata")).admitted  # the classes a Kata install has
    finally:
        env.close()


def test_an_unschedulable_pod_carries_the_preemption_verdict() -> None:
    env = ReferenceTarget().open_environment()
    try:
        env.create_namespace("w")
        env.set_peer_pods_config({"PEERPODS_LIMIT_PER_NODE": "1"})
        env.add_node("n0")
        env.add_node("n1")
        for name in ("a", "b"):
            assert env.create_pod(pod(name)).phase == "Running"
        waiting = env.create_pod(pod("c"))
        assert waiting.phase == "Pending"
        assert waiting.reason == (
            f"0/2 nodes are available: 2 Insufficient {VM}. "
            "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
        )
    finally:
        env.close()


def test_an_unreachable_webhook_is_reported_in_kube_apiservers_words() -> None:
    env = ReferenceTarget().open_environment()
    try:
        env.create_namespace("w")
        env.make_webhook_unreachable()
        outcome = env.create_pod(pod("x"))
        assert not outcome.admitted and outcome.denial is not None
        assert outcome.denial.startswith(
            'Internal error occurred: failed calling webhook "mwebhook.peerpods.io": failed to call webhook: '
            'Post "https://peer-pods-webhook-webhook-service.peer-pods-webhook-system.svc:443/mutate-v1-pod'
            '?timeout=10s": dial tcp '
        )
        assert outcome.denial.endswith(": connect: connection refused")
    finally:
        env.close()
