"""The stack-agnostic request handling: routing, envelope checks, and equality with the core."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings

from sim.harness.difftest import pods, review_for
from sim.peerpods.webhook import WebhookSettings, review_response
from sim.server.limits import MAX_BODY_BYTES, ServerLimits
from sim.server.review import ReviewHandler, envelope_problem, media_type_is_json

HANDLER = ReviewHandler(WebhookSettings(), ServerLimits())


def peer_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {
            "runtimeClassName": "kata-remote",
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}}],
        },
    }


@settings(max_examples=300, deadline=None)
@given(pods())
def test_fast_path_answers_exactly_as_the_core_review_response(pod: dict[str, Any]) -> None:
    review = review_for(pod)
    reply = HANDLER.review(orjson.dumps(review))
    assert reply.status == 200
    assert json.loads(reply.body) == review_response(review)


def test_settings_are_honoured() -> None:
    handler = ReviewHandler(WebhookSettings(extended_resource="example.com/vm"), ServerLimits())
    review = review_for(peer_pod())
    assert json.loads(handler.review(orjson.dumps(review)).body) == review_response(
        review, WebhookSettings(extended_resource="example.com/vm")
    )


@pytest.mark.parametrize(
    ("review", "named"),
    [
        ([], "JSON array"),
        (None, "JSON null"),
        (3, "JSON number"),
        ({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}, "apiVersion"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "Review"}, "kind"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "no request"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": "x"}, "JSON string"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": ""}}, "uid"),
    ],
)
def test_envelope_problems_are_named(review: Any, named: str) -> None:
    problem = envelope_problem(review)
    assert problem is not None
    assert named in problem
    reply = HANDLER.review(orjson.dumps(review))
    assert reply.status == 400
    assert json.loads(reply.body)["message"] == problem


def test_sound_envelope_has_no_problem() -> None:
    assert envelope_problem(review_for(peer_pod())) is None


def test_not_json_and_empty_bodies() -> None:
    assert HANDLER.review(b"").status == 400
    reply = HANDLER.review(b"{nope")
    assert reply.status == 400
    assert "not JSON" in json.loads(reply.body)["message"]


def test_pod_error_is_a_denial_with_code_400_not_an_http_error() -> None:
    review = review_for(peer_pod())
    review["request"]["object"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "2x"
    reply = HANDLER.review(orjson.dumps(review))
    assert reply.status == 200
    response = json.loads(reply.body)["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 400
    assert "2x" in response["status"]["message"]


def test_missing_object_is_a_denial() -> None:
    review = review_for(peer_pod())
    del review["request"]["object"]
    response = json.loads(HANDLER.review(orjson.dumps(review)).body)["response"]
    assert response == {
        "uid": review["request"]["uid"],
        "allowed": False,
        "status": {"code": 400, "message": "request.object is missing; there is no Pod to decode"},
    }


@pytest.mark.parametrize(
    ("method", "path", "content_type", "length", "status"),
    [
        ("POST", "/mutate-v1-pod", "application/json", 10, None),
        ("POST", "/mutate-v1-pod", "application/json; charset=utf-8", None, None),
        ("GET", "/mutate-v1-pod", None, None, 405),
        ("POST", "/mutate-v1-pod", "text/plain", 10, 415),
        ("POST", "/mutate-v1-pod", None, 10, 415),
        ("POST", "/mutate-v1-pod", "application/json", MAX_BODY_BYTES + 1, 413),
        ("POST", "/mutate-v1-pod", "application/json", MAX_BODY_BYTES, None),
        ("GET", "/healthz", None, None, 200),
        ("GET", "/readyz", None, None, 200),
        ("POST", "/readyz", None, None, 405),
        ("POST", "/mutate", "application/json", 10, 404),
    ],
)
def test_precheck_decides_from_the_head(
    method: str, path: str, content_type: str | None, length: int | None, status: int | None
) -> None:
    reply = HANDLER.precheck(method, path, content_type, length)
    assert (reply.status if reply else None) == status


def test_media_type() -> None:
    assert media_type_is_json("Application/JSON ; charset=utf-8")
    assert not media_type_is_json("application/jsonx")
    assert not media_type_is_json(None)


def test_limits_round_trip_through_the_environment() -> None:
    limits = ServerLimits(max_body_bytes=1234, read_timeout=2.5)
    assert ServerLimits.from_env(limits.to_env()) == limits
    assert ServerLimits.from_env({}) == ServerLimits()
