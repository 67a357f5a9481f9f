"""Mutating admission: configuration loading, rule and selector matching, failure policies."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim.kube.admission import (
    AdmissionConfigError,
    InProcessWebhookCaller,
    MutatingWebhook,
    Rule,
    WebhookCallError,
    admit,
    build_admission_review,
    load_webhook_configuration,
    rule_matches,
    webhook_applies,
)

ROOT = Path(__file__).resolve().parents[2]
CAA = ROOT / "fixtures" / "admission" / "caa-chart-mwc.yaml"
OPENSHIFT = ROOT / "fixtures" / "admission" / "openshift-mwc.yaml"
OPENSHIFT_LIST = ROOT / "fixtures" / "namespaces" / "openshift-excluded.txt"
CAA_LIST = ROOT / "fixtures" / "namespaces" / "caa-chart-excluded.txt"
VM = "kata.peerpods.io/vm"


def load(path: Path) -> list[MutatingWebhook]:
    return load_webhook_configuration(path.read_text(), source=path.name)


def names(path: Path) -> list[str]:
    return [
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


def pod(
    name: str = "p", ns: str = "team-a", runtime_class: str | None = "kata-remote", **labels: str
) -> dict[str, Any]:
    container = {
        "name": "app",
        "image": "app",
        "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}},
    }
    spec: dict[str, Any] = {"containers": [container]}
    if runtime_class:
        spec["runtimeClassName"] = runtime_class
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": spec,
    }


# --------------------------------------------------------------------------- fixtures


def test_caa_chart_fixture_has_the_upstream_registration() -> None:
    (webhook,) = load(CAA)
    assert webhook.name == "mwebhook.peerpods.io"
    assert webhook.path == "/mutate-v1-pod"
    assert webhook.failure_policy == "Fail"
    assert webhook.side_effects == "None"
    assert webhook.reinvocation_policy == "IfNeeded"
    assert webhook.admission_review_versions == ("v1",)
    assert webhook.rules == (Rule(("CREATE",), ("",), ("v1",), ("pods",), "*"),)
    assert webhook.namespace_selector is not None
    (expression,) = webhook.namespace_selector["matchExpressions"]
    assert expression["operator"] == "NotIn"
    assert expression["values"] == names(CAA_LIST)


def test_openshift_fixture_registers_create_and_update_and_excludes_the_operator_list() -> None:
    (webhook,) = load(OPENSHIFT)
    assert webhook.rules[0].operations == ("CREATE", "UPDATE")
    assert webhook.namespace_selector is not None
    (expression,) = webhook.namespace_selector["matchExpressions"]
    assert expression["key"] == "kubernetes.io/metadata.name"
    assert expression["values"] == names(OPENSHIFT_LIST), "openshift-mwc.yaml drifted from the exclusion list"


# --------------------------------------------------------------------------- loading errors


def mwc(**webhook_fields: Any) -> str:
    webhook = {
        "name": "mwebhook.peerpods.io",
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "clientConfig": {"service": {"name": "svc", "namespace": "ns", "path": "/mutate-v1-pod"}},
        "rules": [
            {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}
        ],
    }
    webhook.update(webhook_fields)
    document = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration"}
    return yaml.safe_dump({**document, "metadata": {"name": "x"}, "webhooks": [webhook]})


def test_defaults_are_the_api_servers() -> None:
    (webhook,) = load_webhook_configuration(mwc(), source="mine.yaml")
    assert (webhook.failure_policy, webhook.timeout_seconds, webhook.reinvocation_policy) == (
        "Fail",
        10,
        "Never",
    )
    assert webhook.match_policy == "Equivalent"
    assert webhook.namespace_selector is None and webhook.object_selector is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (mwc(failurePolicy="Sometimes"), "webhooks[0].failurePolicy: 'Sometimes'"),
        (mwc(sideEffects=None), "webhooks[0].sideEffects: is required"),
        (mwc(sideEffects="Some"), "webhooks[0].sideEffects: 'Some'"),
        (mwc(admissionReviewVersions=["v1beta1"]), "admissionReviewVersions: must include v1"),
        (mwc(name="peerpods"), "webhooks[0].name: must be a fully qualified name"),
        (mwc(timeoutSeconds=31), "webhooks[0].timeoutSeconds"),
        (mwc(reinvocationPolicy="Always"), "webhooks[0].reinvocationPolicy"),
        (mwc(clientConfig={}), "webhooks[0].clientConfig"),
        (mwc(clientConfig={"url": "http://x/mutate"}), "clientConfig.url: must be an https URL"),
        (
            mwc(
                rules=[
                    {"operations": ["PATCH"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}
                ]
            ),
            "rules[0].operations: 'PATCH'",
        ),
        (
            mwc(
                rules=[
                    {
                        "operations": ["*", "CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                    }
                ]
            ),
            "'*' must be the only entry",
        ),
        (
            mwc(
                rules=[
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["pods"],
                        "scope": "Everywhere",
                    }
                ]
            ),
            "rules[0].scope",
        ),
        (
            mwc(namespaceSelector={"matchExpressions": [{"key": "a", "operator": "Like"}]}),
            "namespaceSelector.matchExpressions[0].operator",
        ),
        (mwc(matchConditions=[{"name": "c", "expression": "true"}]), "matchConditions"),
        (
            mwc().replace("admissionregistration.k8s.io/v1", "admissionregistration.k8s.io/v1beta1"),
            "apiVersion",
        ),
        (mwc().replace("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"), "kind"),
        ("webhooks: [", "not valid YAML"),
        (mwc() + "---\n" + mwc(), "expected one YAML document, found 2"),
    ],
)
def test_bad_configurations_name_file_and_field(text: str, fragment: str) -> None:
    with pytest.raises(AdmissionConfigError) as caught:
        load_webhook_configuration(text, source="mine.yaml")
    assert "mine.yaml" in str(caught.value)
    assert fragment in str(caught.value)


def test_duplicate_webhook_names_are_refused() -> None:
    document = yaml.safe_load(mwc())
    document["webhooks"].append(copy.deepcopy(document["webhooks"][0]))  # a copy: safe_dump would alias it
    with pytest.raises(AdmissionConfigError, match="duplicate name"):
        load_webhook_configuration(yaml.safe_dump(document), source="dup.yaml")


def test_replace_cannot_build_an_invalid_failure_policy() -> None:
    (webhook,) = load(CAA)
    assert replace(webhook, failure_policy="Ignore").failure_policy == "Ignore"
    with pytest.raises(AdmissionConfigError, match="failurePolicy"):
        replace(webhook, failure_policy="Maybe")


# --------------------------------------------------------------------------- matching


def rule(**fields: Any) -> Rule:
    base: dict[str, Any] = {
        "operations": ("CREATE",),
        "api_groups": ("",),
        "api_versions": ("v1",),
        "resources": ("pods",),
    }
    base.update(fields)
    return Rule(**base)


@pytest.mark.parametrize(
    ("the_rule", "operation", "subresource", "expected"),
    [
        (rule(), "CREATE", "", True),
        (rule(), "UPDATE", "", False),
        (rule(operations=("*",)), "DELETE", "", True),
        (rule(), "CREATE", "status", False),
        (rule(resources=("*",)), "CREATE", "", True),
        (rule(resources=("*",)), "CREATE", "status", False),
        (rule(resources=("pods/*",)), "CREATE", "status", True),
        (rule(resources=("pods/*",)), "CREATE", "", True),
        (rule(resources=("*/*",)), "CREATE", "ephemeralcontainers", True),
        (rule(resources=("pods/status",)), "CREATE", "status", True),
        (rule(resources=("deployments",)), "CREATE", "", False),
        (rule(api_groups=("apps",)), "CREATE", "", False),
        (rule(api_groups=("*",)), "CREATE", "", True),
        (rule(api_versions=("v2",)), "CREATE", "", False),
        (rule(scope="Namespaced"), "CREATE", "", True),
        (rule(scope="Cluster"), "CREATE", "", False),
    ],
)
def test_rule_matching(the_rule: Rule, operation: str, subresource: str, expected: bool) -> None:
    assert (
        rule_matches(the_rule, operation=operation, resource=("", "v1", "pods"), subresource=subresource)
        is expected
    )


@pytest.mark.parametrize("excluded", names(CAA_LIST))
def test_caa_chart_skips_its_excluded_namespaces(excluded: str) -> None:
    (webhook,) = load(CAA)
    assert not webhook_applies(
        webhook, operation="CREATE", namespace=namespace(excluded), obj=pod(ns=excluded)
    )


@pytest.mark.parametrize("excluded", names(OPENSHIFT_LIST))
def test_openshift_skips_every_listed_namespace(excluded: str) -> None:
    (webhook,) = load(OPENSHIFT)
    for operation in ("CREATE", "UPDATE"):
        assert not webhook_applies(
            webhook, operation=operation, namespace=namespace(excluded), obj=pod(ns=excluded)
        )


@pytest.mark.parametrize(
    ("profile", "ns", "expected"),
    [
        (CAA, "default", True),
        (CAA, "kube-system-apps", True),
        (CAA, "openshift-config", True),
        (CAA, "kube-node-lease", True),
        (OPENSHIFT, "default", True),
        (OPENSHIFT, "openshift-payments", True),
        (OPENSHIFT, "kube-public", True),
        (OPENSHIFT, "openshift-config", False),
    ],
)
def test_other_namespaces_are_mutated(profile: Path, ns: str, expected: bool) -> None:
    (webhook,) = load(profile)
    assert webhook_applies(webhook, operation="CREATE", namespace=namespace(ns), obj=pod(ns=ns)) is expected


def test_update_is_registered_only_by_openshift() -> None:
    (caa,) = load(CAA)
    (osc,) = load(OPENSHIFT)
    args: dict[str, Any] = {
        "operation": "UPDATE",
        "namespace": namespace("team-a"),
        "obj": pod(),
        "old_obj": pod(),
    }
    assert not webhook_applies(caa, **args)
    assert webhook_applies(osc, **args)


def test_namespace_selector_sees_namespace_labels_not_pod_labels() -> None:
    webhook = replace(load(CAA)[0], namespace_selector={"matchLabels": {"peerpods": "on"}})
    assert webhook_applies(webhook, operation="CREATE", namespace=namespace("a", peerpods="on"), obj=pod())
    assert not webhook_applies(webhook, operation="CREATE", namespace=namespace("a"), obj=pod(peerpods="on"))


def test_object_selector_matches_new_or_old_object() -> None:
    webhook = replace(load(OPENSHIFT)[0], object_selector={"matchLabels": {"app": "web"}})
    ns = namespace("team-a")
    assert webhook_applies(webhook, operation="CREATE", namespace=ns, obj=pod(app="web"))
    assert not webhook_applies(webhook, operation="CREATE", namespace=ns, obj=pod(app="db"))
    assert webhook_applies(
        webhook, operation="UPDATE", namespace=ns, obj=pod(app="db"), old_obj=pod(app="web")
    )
    assert webhook_applies(
        webhook, operation="UPDATE", namespace=ns, obj=pod(app="web"), old_obj=pod(app="db")
    )
    assert not webhook_applies(webhook, operation="UPDATE", namespace=ns, obj=pod(), old_obj=pod())


# --------------------------------------------------------------------------- the review


def test_admission_review_is_built_as_kube_apiserver_does() -> None:
    the_pod = pod("web")
    review = build_admission_review(
        pod=the_pod, namespace="team-a", operation="CREATE", uid="u-1", user_info={"username": "alice"}
    )
    assert review["apiVersion"] == "admission.k8s.io/v1" and review["kind"] == "AdmissionReview"
    request = review["request"]
    assert request["uid"] == "u-1"
    assert request["kind"] == request["requestKind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert (
        request["resource"]
        == request["requestResource"]
        == {"group": "", "version": "v1", "resource": "pods"}
    )
    assert (request["name"], request["namespace"], request["operation"]) == ("web", "team-a", "CREATE")
    assert request["userInfo"] == {"username": "alice"}
    assert request["object"] == the_pod and request["object"] is not the_pod
    assert request["oldObject"] is None and request["dryRun"] is False
    assert request["options"] == {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
    update = build_admission_review(
        pod=the_pod, namespace="n", operation="UPDATE", uid="u", old_pod=the_pod, dry_run=True
    )
    assert update["request"]["oldObject"] == the_pod and update["request"]["dryRun"] is True
    assert update["request"]["options"]["kind"] == "UpdateOptions"


# --------------------------------------------------------------------------- admit


Caller = Callable[[MutatingWebhook, dict[str, Any]], dict[str, Any]]


def run(
    caller: Caller, *, policy: str = "Fail", the_pod: dict[str, Any] | None = None, ns: str = "team-a"
) -> Any:
    webhooks = [replace(w, failure_policy=policy) for w in load(CAA)]
    return admit(
        the_pod or pod(ns=ns),
        operation="CREATE",
        namespace_obj=namespace(ns),
        webhooks=webhooks,
        caller=caller,
    )


def unreachable(webhook: MutatingWebhook, review: dict[str, Any]) -> dict[str, Any]:
    raise WebhookCallError("dial tcp 10.0.0.1:443: connect: connection refused")


def answer(**response: Any) -> Caller:
    def caller(webhook: MutatingWebhook, review: dict[str, Any]) -> dict[str, Any]:
        body = {"uid": review["request"]["uid"], "allowed": True, **response}
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": body}

    return caller


def first_resources(the_pod: dict[str, Any]) -> dict[str, Any]:
    resources: dict[str, Any] = the_pod["spec"]["containers"][0].get("resources") or {}
    return resources


def test_the_reference_webhook_mutates_a_peer_pod() -> None:
    original = pod()
    outcome = run(InProcessWebhookCaller(), the_pod=original)
    assert outcome.allowed and outcome.patched and outcome.called == ["mwebhook.peerpods.io"]
    assert first_resources(outcome.pod) == {"requests": {VM: "1"}, "limits": {VM: "1"}}
    assert first_resources(original) == {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}, "input untouched"


def test_excluded_namespace_is_not_called() -> None:
    outcome = run(unreachable, ns="kube-system")
    assert outcome.allowed and outcome.called == [] and not outcome.patched


def test_fail_policy_refuses_when_the_call_fails() -> None:
    outcome = run(unreachable, policy="Fail")
    assert not outcome.allowed
    assert outcome.reason.startswith('Internal error occurred: failed calling webhook "mwebhook.peerpods.io"')
    assert "connection refused" in outcome.reason


def test_ignore_policy_admits_the_pod_unmutated() -> None:
    outcome = run(unreachable, policy="Ignore")
    assert outcome.allowed and not outcome.patched
    assert outcome.ignored == ["mwebhook.peerpods.io"]
    assert first_resources(outcome.pod) == {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}


@pytest.mark.parametrize("policy", ["Fail", "Ignore"])
def test_a_denial_refuses_whatever_the_policy(policy: str) -> None:
    outcome = run(answer(allowed=False, status={"code": 400, "message": "not a pod"}), policy=policy)
    assert not outcome.allowed
    assert outcome.reason == 'admission webhook "mwebhook.peerpods.io" denied the request: not a pod'


def test_a_denial_without_message_says_so() -> None:
    outcome = run(answer(allowed=False))
    assert outcome.reason.endswith("denied the request: without explanation")


def wrong_uid(webhook: MutatingWebhook, review: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "other", "allowed": True},
    }


@pytest.mark.parametrize(
    ("caller", "fragment"),
    [
        (wrong_uid, "expected response.uid"),
        (lambda w, r: {"kind": "AdmissionReview"}, "invalid webhook response"),
        (
            lambda w, r: {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
            "response is missing",
        ),
        (answer(patch="W10=", patchType="MergePatch"), "unsupported patch type"),
    ],
)
def test_bad_replies_follow_the_failure_policy(caller: Caller, fragment: str) -> None:
    failed = run(caller, policy="Fail")
    assert not failed.allowed and fragment in failed.reason and "failed calling webhook" in failed.reason
    ignored = run(caller, policy="Ignore")
    assert ignored.allowed and not ignored.patched


@pytest.mark.parametrize(
    "patch",
    [
        "%%%not-base64",
        base64.b64encode(b"not json").decode(),
        base64.b64encode(json.dumps([{"op": "remove", "path": "/spec/nothing"}]).encode()).decode(),
    ],
)
def test_an_unusable_patch_refuses_even_under_ignore(patch: str) -> None:
    outcome = run(answer(patch=patch, patchType="JSONPatch"), policy="Ignore")
    assert not outcome.allowed and "Internal error occurred" in outcome.reason


def test_a_valid_patch_is_applied() -> None:
    ops = [{"op": "add", "path": "/metadata/annotations", "value": {"seen": "yes"}}]
    outcome = run(answer(patch=base64.b64encode(json.dumps(ops).encode()).decode(), patchType="JSONPatch"))
    assert outcome.allowed and outcome.patched and outcome.pod["metadata"]["annotations"] == {"seen": "yes"}


def test_webhooks_run_in_order_each_seeing_the_previous_mutation() -> None:
    first = load(CAA)[0]
    second = replace(first, name="second.example.com", path="/mutate-v1-pod")
    seen: list[dict[str, Any]] = []

    def recorder(webhook: MutatingWebhook, review: dict[str, Any]) -> dict[str, Any]:
        seen.append(review["request"]["object"])
        return InProcessWebhookCaller()(webhook, review)

    outcome = admit(
        pod(),
        operation="CREATE",
        namespace_obj=namespace("team-a"),
        webhooks=[first, second],
        caller=recorder,
    )
    assert outcome.called == ["mwebhook.peerpods.io", "second.example.com"]
    assert first_resources(seen[1]) == {"requests": {VM: "1"}, "limits": {VM: "1"}}


def test_in_process_caller_serves_only_the_webhook_path() -> None:
    webhook = replace(load(CAA)[0], path="/validate")
    outcome = admit(
        pod(),
        operation="CREATE",
        namespace_obj=namespace("a"),
        webhooks=[webhook],
        caller=InProcessWebhookCaller(),
    )
    assert not outcome.allowed and "404" in (outcome.reason or "")


def annotating(webhook: MutatingWebhook, review: dict[str, Any]) -> dict[str, Any]:
    """Answers for a second webhook that labels the pod, or passes it on unchanged."""
    if webhook.name == "mwebhook.peerpods.io":
        return InProcessWebhookCaller()(webhook, review)
    ops = [{"op": "add", "path": "/metadata/annotations", "value": {"stamped": "yes"}}]
    already = (review["request"]["object"]["metadata"].get("annotations") or {}).get("stamped")
    body = {"uid": review["request"]["uid"], "allowed": True}
    if not already:
        body |= {"patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(ops).encode()).decode()}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": body}


def test_if_needed_webhook_is_reinvoked_after_a_later_change() -> None:
    (peerpods,) = load(CAA)
    stamper = replace(peerpods, name="stamper.example.com", reinvocation_policy="Never")
    ns = namespace("team-a")
    outcome = admit(
        pod(), operation="CREATE", namespace_obj=ns, webhooks=[peerpods, stamper], caller=annotating
    )
    assert outcome.called == ["mwebhook.peerpods.io", "stamper.example.com", "mwebhook.peerpods.io"]
    assert outcome.reinvoked == ["mwebhook.peerpods.io"]
    assert outcome.pod["metadata"]["annotations"] == {"stamped": "yes"}
    assert first_resources(outcome.pod) == {"requests": {VM: "1"}, "limits": {VM: "1"}}


def test_no_reinvocation_without_a_later_change_or_when_never() -> None:
    (peerpods,) = load(CAA)
    stamper = replace(peerpods, name="stamper.example.com")
    ns = namespace("team-a")
    alone = admit(pod(), operation="CREATE", namespace_obj=ns, webhooks=[peerpods], caller=annotating)
    assert alone.reinvoked == [], "its own patch does not count"
    later = admit(
        pod(), operation="CREATE", namespace_obj=ns, webhooks=[stamper, peerpods], caller=annotating
    )
    assert later.reinvoked == ["stamper.example.com"], "the peer-pods patch came after the stamper's call"
    never = replace(peerpods, reinvocation_policy="Never")
    outcome = admit(pod(), operation="CREATE", namespace_obj=ns, webhooks=[never, stamper], caller=annotating)
    assert outcome.reinvoked == []
