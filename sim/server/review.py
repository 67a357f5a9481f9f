"""Stack-agnostic request handling: the bytes a request carries in, the bytes answered out.

Every HTTP stack the server can run on (and every one the benchmark compares) delegates
here, so that they all answer identically and the stack adapters stay thin. The work is
split in two so that refusals never cost a body read: :meth:`ReviewHandler.precheck`
decides from the request line and headers alone (route, method, media type, declared
length), :meth:`ReviewHandler.review` handles a body that was allowed in.

A client's mistake is always a 4xx (a ``metav1.Status`` naming the problem) or, once the
envelope is sound enough to carry a ``uid``, an AdmissionReview with ``allowed: false``
and code 400 as controller-runtime answers. A 5xx means a bug in the webhook itself.

Go's decoder reads a quantity from its raw JSON text, which orjson does not keep: a body
holding a backslash is checked once more for quantities spelled with escapes, and a body
that may write a number with an exponent is parsed again keeping the numbers' text
(sim.jsonescapes); other bodies pay one byte scan each.

The hot path is deliberately short: one orjson parse, the core's direct patch operations
(:func:`sim.peerpods.webhook.mutation_patch`, no diffing of two pods), base64 and one orjson dump.
Its answers must equal :func:`sim.peerpods.webhook.review_response`'s; the unit tests hold them to it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from sim.bounds import excerpt
from sim.jsonescapes import loads_keeping_numbers, may_hold_exponent_numbers
from sim.peerpods.webhook import WebhookSettings, admission_review, request_response
from sim.podquantities import escaped_quantity
from sim.server.limits import ServerLimits

MUTATE_PATH = "/mutate-v1-pod"
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
ADMISSION_API_VERSION = "admission.k8s.io/v1"
JSON = "application/json"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer, ready for any stack to write."""

    status: int
    body: bytes
    content_type: str = JSON


_REASONS = {
    400: "BadRequest",
    404: "NotFound",
    405: "MethodNotAllowed",
    408: "Timeout",
    411: "LengthRequired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    500: "InternalError",
}


def status_reply(code: int, message: str) -> Reply:
    """A ``metav1.Status`` failure, the shape Kubernetes clients expect an error in."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _REASONS.get(code, "BadRequest"),
        "code": code,
    }
    return Reply(code, orjson.dumps(body))


OK_REPLY = Reply(200, b"ok", "text/plain; charset=utf-8")


def _json_type_name(value: object) -> str:
    """How a decoded JSON value is called in an error message."""
    if isinstance(value, list):
        return "a JSON array"
    if value is None:
        return "JSON null"
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, int | float):
        return "a JSON number"
    if isinstance(value, str):
        return "a JSON string"
    return "a JSON object"


def envelope_problem(review: object) -> str | None:
    """What makes ``review`` unusable as an AdmissionReview v1 request, or None if it is usable.

    Only the envelope is checked here: a review whose ``uid`` can be echoed is answered
    with an AdmissionReview even when its object is wrong (the core says why).
    """
    if not isinstance(review, dict):
        return f"request body is {_json_type_name(review)}, expected an AdmissionReview object"
    api_version = review.get("apiVersion")
    if api_version != ADMISSION_API_VERSION:
        return f"apiVersion is {excerpt(api_version)}, expected {ADMISSION_API_VERSION!r}"
    kind = review.get("kind")
    if kind != "AdmissionReview":
        return f"kind is {excerpt(kind)}, expected 'AdmissionReview'"
    request = review.get("request")
    if request is None:
        return "AdmissionReview has no request"
    if not isinstance(request, dict):
        return f"request is {_json_type_name(request)}, expected an object"
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        return "request.uid is missing or not a non-empty string"
    return None


def media_type_is_json(content_type: str | None) -> bool:
    """True for ``application/json`` with or without parameters (``; charset=utf-8``)."""
    if content_type is None:
        return False
    return content_type.partition(";")[0].strip().lower() == JSON


class ReviewHandler:
    """Answers requests for one set of webhook settings and limits."""

    __slots__ = ("limits", "settings")

    def __init__(self, settings: WebhookSettings, limits: ServerLimits) -> None:
        self.settings = settings
        self.limits = limits

    def precheck(
        self, method: str, path: str, content_type: str | None, content_length: int | None
    ) -> Reply | None:
        """Answer from the request head alone, or return None when the body should be read.

        ``content_length`` is None for a chunked body; the stack must then stop reading as
        soon as :attr:`ServerLimits.max_body_bytes` is crossed.
        """
        if path == MUTATE_PATH:
            if method != "POST":
                return status_reply(405, f"{method} is not allowed on {MUTATE_PATH}; use POST")
            if not media_type_is_json(content_type):
                return status_reply(415, f"Content-Type is {excerpt(content_type)}, expected {JSON!r}")
            if content_length is not None and content_length > self.limits.max_body_bytes:
                return self.too_large(content_length)
            return None
        if path in HEALTH_PATHS:
            if method in ("GET", "HEAD"):
                return OK_REPLY
            return status_reply(405, f"{method} is not allowed on {path}; use GET")
        return status_reply(404, f"no such path {excerpt(path)}; the webhook serves {MUTATE_PATH}")

    def too_large(self, size: int | None) -> Reply:
        """The 413 for a body over the limit (``size`` None: a chunked body that crossed it)."""
        told = "a chunked body" if size is None else f"{size} bytes"
        return status_reply(413, f"request body ({told}) exceeds {self.limits.max_body_bytes} bytes")

    def review(self, body: bytes) -> Reply:
        """Answer one AdmissionReview request body."""
        if not body:
            return status_reply(400, "request body is empty")
        try:
            review: Any = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return status_reply(400, f"request body is not JSON: {exc}")
        problem = envelope_problem(review)
        if problem is not None:
            return status_reply(400, problem)
        request = review["request"]
        uid: str = request["uid"]
        obj = request.get("object")
        escaped = escaped_quantity(body, ("request", "object"), loads=orjson.loads)
        if escaped is not None:
            refusal = {"code": 400, "message": f"cannot decode request.object as a Pod: {escaped}"}
            response = {"uid": uid, "allowed": False, "status": refusal}
            return Reply(200, orjson.dumps(admission_review(ADMISSION_API_VERSION, response)))
        if may_hold_exponent_numbers(body):
            obj = loads_keeping_numbers(body)["request"].get("object")
        try:
            response = request_response(uid, obj, self.settings, dumps=orjson.dumps)
        except Exception:
            log.exception("webhook failed on review uid=%r", uid)
            return status_reply(500, "internal error in the webhook (logged); this is a bug")
        return Reply(200, orjson.dumps(admission_review(ADMISSION_API_VERSION, response)))
