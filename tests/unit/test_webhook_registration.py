"""The suite's side of kube-apiserver for registrations: refusal codes, the audit of calls,
the stand-in sidecar webhook, reinvocation, and judging a deployed configuration's profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sim.errors import ConformanceInputError
from sim.harness.targets.base import NotApplicable, TargetOptions
from sim.harness.targets.inprocess import InProcessEnvironment
from sim.harness.targets.reference import ReferenceTarget
from sim.harness.targets.webhook import WebhookTarget, detect_profile, excluded_namespaces, read_configuration
from sim.kube.admission import (
    InProcessWebhookCaller,
    RecordingCaller,
    SidecarInjector,
    WebhookCallError,
    admit,
    denial_code,
    load_webhook_configuration,
    sidecar_webhook,
)
from sim.peerpods.providers.memory import MemoryProvider

ROOT = Path(__file__).resolve().parents[2]
ADMISSION = ROOT / "fixtures" / "admission"
VCPUS = "io.katacontainers.config.hypervisor.default_vcpus"
MEMORY = "io.katacontainers.config.hypervisor.default_memory"
NAMESPACE = {"metadata": {"name": "workloads", "labels": {"kubernetes.io/metadata.name": "workloads"}}}


def webhooks(profile: str) -> list[Any]:
    path = ADMISSION / f"{profile}-mwc.yaml"
    return load_webhook_configuration(path.read_text(), source=str(path))


def peer_pod(**resources: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "meshed", "namespace": "workloads"},
        "spec": {
            "runtimeClassName": "kata-remote",
            "containers": [{"name": "app", "image": "busybox", "resources": resources}],
        },
    }


SIDECAR = {
    "name": "sidecar",
    "image": "proxy",
    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "300m", "memory": "96Mi"}},
}


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (None, 400),
        ({}, 400),
        ({"code": 403}, 403),
        ({"code": 200}, 400),
        ({"code": True}, 400),
        ({"code": 500}, 500),
    ],
)
def test_denial_code_is_the_webhooks_own_raised_to_400(status: dict[str, Any] | None, code: int) -> None:
    response: dict[str, Any] = {"allowed": False}
    if status is not None:
        response["status"] = status
    assert denial_code(response) == code


def _admit(profile: str, pod: dict[str, Any]) -> tuple[Any, RecordingCaller]:
    recorder = RecordingCaller(InProcessWebhookCaller())
    recorder.local[sidecar_webhook().name] = SidecarInjector(SIDECAR)
    outcome = admit(
        pod,
        operation="CREATE",
        namespace_obj=NAMESPACE,
        webhooks=[*webhooks(profile), sidecar_webhook()],
        caller=recorder,
    )
    return outcome, recorder


def test_ifneeded_webhook_is_reinvoked_after_the_sidecar_and_sizes_from_it_alone() -> None:
    pod = peer_pod(requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "2", "memory": "2Gi"})
    outcome, recorder = _admit("caa-chart", pod)
    assert outcome.allowed and outcome.reinvoked == ["mwebhook.peerpods.io"]
    assert [(c.webhook, c.operation) for c in recorder.calls_for("workloads", "meshed", others=True)] == [
        ("mwebhook.peerpods.io", "CREATE"),
        (sidecar_webhook().name, "CREATE"),
        ("mwebhook.peerpods.io", "CREATE"),
    ]
    assert [c.webhook for c in recorder.calls_for("workloads", "meshed")] == ["mwebhook.peerpods.io"] * 2
    annotations = outcome.pod["metadata"]["annotations"]
    assert (annotations[VCPUS], annotations[MEMORY]) == ("1", "96")  # the sidecar's limits, rounded up
    sidecar = outcome.pod["spec"]["containers"][1]
    assert sidecar["name"] == "sidecar" and not (sidecar.get("resources") or {})


def test_never_webhook_is_not_reinvoked_and_the_sidecar_keeps_its_resources() -> None:
    pod = peer_pod(requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "2", "memory": "2Gi"})
    outcome, recorder = _admit("openshift", pod)
    assert outcome.reinvoked == []
    assert [c.webhook for c in recorder.calls_for("workloads", "meshed")] == ["mwebhook.peerpods.io"]
    annotations = outcome.pod["metadata"]["annotations"]
    assert (annotations[VCPUS], annotations[MEMORY]) == ("2", "2048")
    assert outcome.pod["spec"]["containers"][1]["resources"] == SIDECAR["resources"]


def test_the_sidecar_injector_adds_its_container_once() -> None:
    injector = SidecarInjector(SIDECAR)
    review: dict[str, Any] = {"request": {"uid": "u", "object": peer_pod()}}
    answer = injector(sidecar_webhook(), review)
    assert answer["response"]["patchType"] == "JSONPatch"
    review["request"]["object"]["spec"]["containers"].append(dict(SIDECAR))
    assert "patch" not in injector(sidecar_webhook(), review)["response"]


def test_failed_calls_are_recorded_as_such() -> None:
    def unreachable(webhook: Any, review: dict[str, Any]) -> dict[str, Any]:
        raise WebhookCallError("connection refused")

    recorder = RecordingCaller(unreachable)
    outcome = admit(
        peer_pod(),
        operation="CREATE",
        namespace_obj=NAMESPACE,
        webhooks=webhooks("caa-chart"),
        caller=recorder,
    )
    assert not outcome.allowed and outcome.code == 500
    assert [c.allowed for c in recorder.calls] == [None]


def test_refusal_code_reaches_the_outcome() -> None:
    pod = peer_pod(requests={"cpu": "two"})
    outcome = admit(
        pod,
        operation="CREATE",
        namespace_obj=NAMESPACE,
        webhooks=webhooks("caa-chart"),
        caller=InProcessWebhookCaller(),
    )
    assert not outcome.allowed and outcome.code == 400


def test_the_reference_api_server_refuses_a_bad_quantity_before_admission() -> None:
    env = InProcessEnvironment(MemoryProvider())
    try:
        env.create_namespace("workloads")
        outcome = env.create_pod(peer_pod(requests={"cpu": "two"}))
        assert not outcome.admitted and outcome.code == 400
        assert env.webhook_requests("workloads", "meshed") == []  # decoding comes first
        admitted = env.create_pod({**peer_pod(), "metadata": {"name": "ok", "namespace": "workloads"}})
        assert admitted.admitted and env.webhook_requests("workloads", "ok") == ["CREATE"]
    finally:
        env.close()


@pytest.mark.parametrize(
    ("path", "profile"),
    [
        (ADMISSION / "caa-chart-mwc.yaml", "caa-chart"),
        (ADMISSION / "openshift-mwc.yaml", "openshift"),
        (ROOT / "fixtures" / "webhook" / "mwc-create-update.yaml", "caa-chart"),
    ],
)
def test_profile_is_detected_from_the_excluded_namespaces(path: Path, profile: str) -> None:
    assert detect_profile(read_configuration(path)) == profile


def test_openshift_configuration_excludes_the_operators_66_namespaces() -> None:
    listing = (ROOT / "fixtures" / "namespaces" / "openshift-excluded.txt").read_text().split()
    assert len(listing) == 66
    assert excluded_namespaces(read_configuration(ADMISSION / "openshift-mwc.yaml")) == set(listing)


def test_profile_without_configuration_and_unknown_profile_are_input_errors() -> None:
    with pytest.raises(ConformanceInputError, match="--webhook-config"):
        WebhookTarget("https://127.0.0.1:9/x", None, None, profile="openshift")
    with pytest.raises(ConformanceInputError, match="'kubernetes'"):
        WebhookTarget("https://127.0.0.1:9/x", None, ADMISSION / "openshift-mwc.yaml", profile="kubernetes")
    with pytest.raises(ConformanceInputError, match="--profile"):
        ReferenceTarget.from_options(TargetOptions(extra={"profile": "openshift"}))


def test_deployed_configuration_is_judged_only_for_its_profile() -> None:
    bare = WebhookTarget("https://127.0.0.1:9/x", None).open_environment()
    with pytest.raises(NotApplicable, match="give the MutatingWebhookConfiguration you deploy"):
        bare.use_deployed_webhook_configuration("caa-chart")
    target = WebhookTarget("https://127.0.0.1:9/x", None, ADMISSION / "caa-chart-mwc.yaml")
    assert target.deployed_profile == "caa-chart"
    env = target.open_environment()
    env.use_deployed_webhook_configuration("caa-chart")
    with pytest.raises(
        NotApplicable, match=r"of the .caa-chart. profile .*written for the .openshift. profile"
    ):
        env.use_deployed_webhook_configuration("openshift")
    forced = WebhookTarget(
        "https://127.0.0.1:9/x", None, ADMISSION / "caa-chart-mwc.yaml", profile="openshift"
    )
    assert forced.deployed_profile == "openshift" and forced.profile_source == "--profile"
