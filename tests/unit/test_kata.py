"""The Kata runtime between scheduling and the adaptor: initdata decoded first, sizing sent."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from sim.peerpods import initdata
from sim.peerpods.kata import ANN_MEMORY, ANN_VCPUS, OPENSHIFT_CONFIG, KataRuntime, SandboxError

TOML = (Path(__file__).resolve().parents[2] / "fixtures" / "initdata" / "attestation.toml").read_bytes()


def pod(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "team-a", "annotations": dict(annotations or {})}}


def sent(request: dict[str, Any]) -> dict[str, str]:
    annotations: dict[str, str] = request["metadata"]["annotations"]
    return annotations


def test_the_annotation_reaches_the_adaptor_as_decoded_toml() -> None:
    request = KataRuntime().sandbox_request(pod({initdata.ANNOTATION: initdata.encode(TOML)}))
    assert sent(request)[initdata.ANNOTATION] == TOML.decode()


def test_an_empty_annotation_is_dropped() -> None:
    assert initdata.ANNOTATION not in sent(KataRuntime().sandbox_request(pod({initdata.ANNOTATION: ""})))


@pytest.mark.parametrize(
    ("value", "mention"),
    [
        (initdata.encode(TOML)[:-1], "padding"),
        ("not base64 !", "base64"),
        (base64.b64encode(TOML).decode(), "gzip"),
        (initdata.encode(b"a = = b"), "TOML"),
        (initdata.encode(b'algorithm = "md5"\n'), "md5"),
    ],
)
def test_a_broken_annotation_fails_the_sandbox(value: str, mention: str) -> None:
    with pytest.raises(SandboxError, match="FailedCreatePodSandBox") as info:
        KataRuntime().sandbox_request(pod({initdata.ANNOTATION: value}))
    assert "team-a/web" in str(info.value) and mention in str(info.value)


def test_sizing_defaults_and_overrides() -> None:
    assert sent(KataRuntime().sandbox_request(pod()))[ANN_VCPUS] == "0"
    openshift = KataRuntime(OPENSHIFT_CONFIG)
    assert (
        sent(openshift.sandbox_request(pod()))[ANN_VCPUS],
        sent(openshift.sandbox_request(pod()))[ANN_MEMORY],
    ) == (
        "1",
        "2048",
    )
    request = openshift.sandbox_request(pod({ANN_VCPUS: "1.5", ANN_MEMORY: "4096"}))
    assert (sent(request)[ANN_VCPUS], sent(request)[ANN_MEMORY]) == ("2", "4096")


@pytest.mark.parametrize(("key", "value"), [(ANN_VCPUS, "many"), (ANN_MEMORY, "1.5"), (ANN_MEMORY, "-1")])
def test_an_unparsable_sizing_annotation_fails_the_sandbox_naming_it(key: str, value: str) -> None:
    with pytest.raises(SandboxError, match=f"parsing annotation {key}"):
        KataRuntime().sandbox_request(pod({key: value}))
