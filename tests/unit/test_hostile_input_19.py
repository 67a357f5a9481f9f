"""Issue 19's hostile inputs, one test per reproduction (the server-process ones are in
tests/integration/test_webhook_server.py): bounded work per review, Go's decoder everywhere
in the pod, regular files only, safe certificate reloads, the GPU annotation as upstream
writes it, and the differential test's stored-form comparison."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from sim.bounds import MAX_POD_CONTAINERS
from sim.errors import ConformanceInputError
from sim.harness.cli import main
from sim.harness.difftest import RawJson, encode_review, outcome, reference_endpoint, review_for, stored_form
from sim.jsonescapes import ESCAPE_MARK, mark_escapes
from sim.peerpods.kata import ANN_GPUS, KataRuntime, SandboxError, kata_accepts_uint
from sim.peerpods.webhook import PodError, WebhookSettings, mutate_pod
from sim.podquantities import canonical_quantities, check_pod_quantities, escaped_quantity
from sim.ports import free_port
from sim.server.limits import ServerLimits
from sim.server.review import ReviewHandler
from sim.server.tls import ServingPair, certificate_identity, load_certificates, self_signed

HANDLER = ReviewHandler(WebhookSettings(), ServerLimits())


def peer_pod(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"runtimeClassName": "kata-remote", "containers": [{"name": "app", "image": "x"}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {**base, **spec}}


def body_of(pod: object) -> bytes:
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u", "object": pod},
    }
    return json.dumps(review, separators=(",", ":")).encode()


def answer(body: bytes) -> dict[str, Any]:
    reply = HANDLER.review(body)
    assert reply.status == 200, reply.body[:300]
    response: dict[str, Any] = json.loads(reply.body)["response"]
    return response


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return status, err


# ------------------------------------------------------------------ 1: one review cannot stall a worker


def test_a_million_empty_containers_are_refused_fast_naming_the_bound() -> None:
    containers = b",".join([b"{}"] * 1_000_000)
    body = body_of(peer_pod()).replace(
        b'"containers":[{"name":"app","image":"x"}]', b'"containers":[' + containers + b"]"
    )
    assert len(body) < 3 * 1024 * 1024
    started = time.monotonic()
    response = answer(body)
    assert time.monotonic() - started < 2.0
    assert response["allowed"] is False and response["status"]["code"] == 400
    assert "1,000,000 containers" in response["status"]["message"]
    assert f"{MAX_POD_CONTAINERS:,}" in response["status"]["message"]


def test_the_bound_counts_every_container_list() -> None:
    half = [{"name": f"c{i}"} for i in range(MAX_POD_CONTAINERS // 2 + 1)]
    with pytest.raises(PodError, match="ephemeralContainers"):
        mutate_pod(peer_pod(containers=half, ephemeralContainers=half))
    exactly = [{"name": f"c{i}"} for i in range(MAX_POD_CONTAINERS)]
    assert mutate_pod(peer_pod(containers=exactly))["spec"]["containers"][0]["resources"]


def test_a_pod_at_the_bound_is_answered_within_a_second() -> None:
    containers: list[dict[str, Any]] = [{}] * MAX_POD_CONTAINERS
    started = time.monotonic()
    response = answer(body_of(peer_pod(containers=containers)))
    assert time.monotonic() - started < 1.0
    assert response["allowed"] is True
    assert len(base64.b64decode(response["patch"])) < 1024 * 1024


# ------------------------------------------------------------------ 6: Go's decoder everywhere in the pod


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (
            {"ephemeralContainers": [{"name": "d", "resources": {"requests": {"cpu": "bogus"}}}]},
            "ephemeralContainers[0]",
        ),
        ({"overhead": {"cpu": "bogus"}}, "spec.overhead.cpu"),
        ({"volumes": [{"name": "v", "emptyDir": {"sizeLimit": "bogus"}}]}, "emptyDir.sizeLimit"),
        ({"resources": {"limits": {"memory": "bogus"}}}, "spec.resources.limits.memory"),
        (
            {
                "containers": [
                    {"name": "a", "env": [{"name": "E", "valueFrom": {"resourceFieldRef": {"divisor": "x"}}}]}
                ]
            },
            "divisor",
        ),
        (
            {
                "volumes": [
                    {
                        "name": "v",
                        "ephemeral": {
                            "volumeClaimTemplate": {"spec": {"resources": {"requests": {"storage": "?"}}}}
                        },
                    }
                ]
            },
            "volumeClaimTemplate.spec.resources.requests.storage",
        ),
    ],
)
@pytest.mark.parametrize("runtime_class", ["kata-remote", "runc"])
def test_a_bad_quantity_anywhere_is_refused_as_go_refuses_it(
    spec: dict[str, Any], field: str, runtime_class: str
) -> None:
    pod = peer_pod(**spec)
    pod["spec"]["runtimeClassName"] = runtime_class  # Go decodes the whole pod before looking at it
    response = answer(body_of(pod))
    assert response["allowed"] is False and response["status"]["code"] == 400
    assert field in response["status"]["message"]


def test_a_bad_quantity_in_the_status_is_refused_too() -> None:
    pod = peer_pod()
    pod["status"] = {"containerStatuses": [{"name": "app", "allocatedResources": {"cpu": "bogus"}}]}
    with pytest.raises(PodError, match=r"status.containerStatuses\[0\].allocatedResources.cpu"):
        mutate_pod(pod)


@pytest.mark.parametrize("escaped", [b'"\\u0031"', b'"1\\u0030"', b'"\\u001f1"', b'"1\\t"'])
def test_a_quantity_spelled_with_a_json_escape_is_refused(escaped: bytes) -> None:
    body = body_of(peer_pod(overhead={"cpu": "PLACE"})).replace(b'"PLACE"', escaped)
    response = answer(body)
    assert response["allowed"] is False and response["status"]["code"] == 400
    assert "spec.overhead.cpu" in response["status"]["message"] and "escape" in response["status"]["message"]


def test_escapes_elsewhere_are_harmless() -> None:
    pod = peer_pod()
    pod["metadata"]["annotations"] = {"note": 'caf\u00e9 "quoted" \\ back'}
    body = json.dumps(json.loads(body_of(pod)), ensure_ascii=True).encode()  # every non-ASCII escaped
    assert b"\\u00e9" in body
    assert answer(body)["allowed"] is True
    # an escaped key still finds its quantity (Go decodes keys normally)
    keyed = body_of(peer_pod(overhead={"cpu": "1"})).replace(b'"overhead"', b'"overh\\u0065ad"')
    assert escaped_quantity(keyed, ("request", "object")) is None


def test_marking_keeps_the_structure() -> None:
    body = b'{"a":"x\\\\","b":["\\"",  "\\u0031"],"c":"plain"}'
    marked = json.loads(mark_escapes(body))
    assert marked["c"] == "plain"
    assert marked["a"] == "x" + ESCAPE_MARK + "\\" and marked["b"] == [ESCAPE_MARK + '"', ESCAPE_MARK + "1"]


def test_go_spaces_are_trimmed_and_python_only_spaces_are_not() -> None:
    assert mutate_pod(peer_pod(overhead={"cpu": "\u00a01\u3000"}))  # NBSP, ideographic space: Go trims them
    with pytest.raises(PodError, match="control character"):
        mutate_pod(peer_pod(overhead={"cpu": "\x1f1"}))


def test_check_walks_only_the_quantity_fields() -> None:
    pod = peer_pod(overhead={"cpu": "1"}, nodeSelector={"cpu": "bogus"})
    check_pod_quantities(pod)
    with pytest.raises(ConformanceInputError, match=r"spec\.overhead: expected an object"):
        check_pod_quantities(peer_pod(overhead=["1"]))


# ------------------------------------------------------------------ the GPU annotation and Kata


@pytest.mark.parametrize(
    ("requests", "expected"),
    [(["1Ki"], "1Ki"), (["1e3"], "1e3"), (["1000"], "1k"), (["1", "1"], "2"), ([1.5], "1500m")],
)
def test_default_gpus_is_upstreams_quantity_string(requests: list[object], expected: str) -> None:
    containers = [
        {"name": f"c{i}", "resources": {"requests": {"nvidia.com/gpu": value}}}
        for i, value in enumerate(requests)
    ]
    assert mutate_pod(peer_pod(containers=containers))["metadata"]["annotations"][ANN_GPUS] == expected


def test_a_json_number_keeps_its_text_for_the_gpu_format() -> None:
    body = body_of(peer_pod(containers=[{"name": "a", "resources": {"requests": {"nvidia.com/gpu": "X"}}}]))
    response = answer(body.replace(b'"X"', b"1e3"))
    ops = json.loads(base64.b64decode(response["patch"]))
    annotations = next(op["value"] for op in ops if op["path"] == "/metadata/annotations")
    assert annotations[ANN_GPUS] == "1e3"


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("1", True),
        ("007", True),
        ("1Ki", False),
        ("1e3", False),
        ("1k", False),
        (" 1", False),
        ("+1", False),
        ("\u0661", False),
        (str(1 << 64), False),
    ],
)
def test_kata_reads_default_gpus_as_an_unsigned_integer(value: str, accepted: bool) -> None:
    assert kata_accepts_uint(value) is accepted
    pod = peer_pod()
    pod["metadata"]["annotations"] = {ANN_GPUS: value}
    if accepted:
        KataRuntime().sandbox_request(pod)
    else:
        with pytest.raises(SandboxError, match="default_gpus"):
            KataRuntime().sandbox_request(pod)


# ------------------------------------------------------------------ 7, 4, 5: files


def test_fifo_directory_and_devices_are_refused_naming_the_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    cases = [
        (["mutate", str(fifo)], "FIFO"),
        (["initdata", "encode", str(fifo)], "FIFO"),
        (["initdata", "digest", str(fifo)], "FIFO"),
        (["initdata", "decode", str(fifo)], "FIFO"),
        (["initdata", "decode", str(tmp_path)], "directory"),
        (["initdata", "decode", "/dev/zero"], "character device"),
        (["webhook", "serve", "--cert", str(fifo), "--key", str(fifo), "--port", "1"], "FIFO"),
    ]
    for argv, kind in cases:
        started = time.monotonic()
        status, err = cli(capsys, *argv)
        assert status == 2, argv
        assert kind in err and (str(fifo) in err or str(tmp_path) in err or "/dev/zero" in err), err
        assert time.monotonic() - started < 5


def test_self_signed_into_an_unwritable_place_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    port = str(free_port())
    status, err = cli(capsys, "webhook", "serve", "--self-signed", "/proc/x.pem", "--port", port)
    assert status == 2
    assert "--self-signed /proc/x.pem" in err


# ------------------------------------------------------------------ 3: certificate reloads


@pytest.fixture
def pairs(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    a = self_signed(tmp_path / "a", ["127.0.0.1"], tmp_path / "ca-a.pem")
    b = self_signed(tmp_path / "b", ["127.0.0.1"], tmp_path / "ca-b.pem")
    return a.cert, a.key, b.cert, b.key


def test_a_bad_pair_keeps_the_copies_and_names_the_file(
    tmp_path: Path, pairs: tuple[Path, Path, Path, Path]
) -> None:
    cert_a, key_a, cert_b, key_b = pairs
    serving = ServingPair.in_dir(tmp_path / "serving")
    serving.install(cert_a, key_a)
    before = (serving.cert.read_bytes(), serving.key.read_bytes())
    truncated = tmp_path / "half.crt"
    truncated.write_bytes(cert_b.read_bytes()[:200])
    for cert, key, named in [
        (tmp_path / "missing.crt", key_a, "missing.crt"),
        (truncated, key_b, "half.crt"),
        (cert_a, key_b, str(key_b)),
        (cert_a, tmp_path / "missing.key", "missing.key"),
    ]:
        with pytest.raises(ConformanceInputError, match=named.replace(".", r"\.")):
            serving.install(cert, key)
        assert (serving.cert.read_bytes(), serving.key.read_bytes()) == before
    leaf = serving.install(cert_b, key_b)
    assert certificate_identity(load_certificates(serving.cert)[0]) == certificate_identity(leaf)


# ------------------------------------------------------------------ 8: diff judges what kube-apiserver stores


def test_upstreams_no_ops_are_no_difference() -> None:
    pod = peer_pod()
    pod["spec"]["runtimeClassName"] = "runc"
    pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": 0.5, "memory": "1.0Gi"}}
    review = review_for({**pod, "metadata": {"name": "p", "namespace": "default"}})
    body = encode_review(review)
    ops = [
        {"op": "add", "path": "/status", "value": {}},
        {"op": "add", "path": "/metadata/creationTimestamp", "value": None},
        {"op": "replace", "path": "/spec/containers/0/resources/requests/cpu", "value": "500m"},
        {"op": "replace", "path": "/spec/containers/0/resources/requests/memory", "value": "1Gi"},
    ]
    patch = base64.b64encode(json.dumps(ops).encode()).decode()

    def upstream(review: dict[str, Any], body: bytes) -> dict[str, Any]:
        response = {
            "uid": review["request"]["uid"],
            "allowed": True,
            "patchType": "JSONPatch",
            "patch": patch,
        }
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}

    assert outcome(upstream, review, body) == outcome(reference_endpoint(WebhookSettings()), review, body)


def test_stored_form_keeps_real_differences() -> None:
    assert stored_form({"spec": {"overhead": {"cpu": "1"}}}) != stored_form(
        {"spec": {"overhead": {"cpu": "2"}}}
    )
    assert canonical_quantities({"spec": {"overhead": {"cpu": 0.0, "memory": "1024Mi"}}}) == {
        "spec": {"overhead": {"cpu": "0", "memory": "1Gi"}}
    }


def test_raw_values_reach_the_body_verbatim() -> None:
    body = encode_review({"a": RawJson('"\\u0031"'), "b": RawJson("1e3"), "c": "\u00a0"})
    assert body == b'{"a":"\\u0031","b":1e3,"c":"\xc2\xa0"}'
