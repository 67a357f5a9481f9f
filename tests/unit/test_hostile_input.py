"""The reproductions of issue 11 (hostile input), each one a test that failed before the fix.

Every case must end in a clear error naming the culprit, in bounded time and memory,
with no traceback (CLI exit 2) and no 5xx (the review handler).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from sim import bounds
from sim.harness.cli import main
from sim.kube.admission import AdmissionConfigError, load_webhook_configuration
from sim.peerpods import initdata
from sim.peerpods.podvm import process_user_data
from sim.peerpods.webhook import WebhookSettings
from sim.quantities import QuantityError, parse_quantity, quantity_value
from sim.server.limits import ServerLimits
from sim.server.review import ReviewHandler
from sim.yamlload import YamlInputError, load_all


def pod(resources: dict[str, Any], runtime_class: str = "kata-remote") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "demo"},
        "spec": {
            "runtimeClassName": runtime_class,
            "containers": [{"name": "app", "image": "x", "resources": resources}],
        },
    }


def review(obj: object) -> dict[str, Any]:
    handler = ReviewHandler(WebhookSettings(), ServerLimits())
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u1", "operation": "CREATE", "object": obj},
    }
    reply = handler.review(json.dumps(body).encode())
    assert reply.status < 500, reply.body[:500]
    answer: dict[str, Any] = json.loads(reply.body)
    return answer


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return status, err


# ------------------------------------------------------------------ 3: huge exponents


@pytest.mark.parametrize("kind", ["requests", "limits"])
def test_huge_exponent_is_allowed_false_naming_the_resource_not_a_500(kind: str) -> None:
    resources = {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}
    resources[kind] = {"cpu": "1e1000000"}
    answer = review(pod(resources))["response"]
    assert answer["allowed"] is False
    assert answer["status"]["code"] == 400
    assert "cpu" in answer["status"]["message"]


def test_huge_exponent_on_a_pod_the_webhook_ignores_is_admitted_as_go_admits_it() -> None:
    assert review(pod({"limits": {"cpu": "1e1000000"}}, runtime_class="runc"))["response"]["allowed"] is True


@pytest.mark.parametrize("text", ["1e2147483648", "1e-2147483649", "1e99999999999999999999"])
def test_exponent_outside_int32_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(
        QuantityError, match=r"spec\.x: .*exponent is outside resource\.Quantity's int32 range"
    ):
        parse_quantity(text, where="spec.x")


def test_mutate_with_a_huge_exponent_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "pod.json"
    manifest.write_text(json.dumps(pod({"requests": {"cpu": "1e1000000"}})))
    status, err = cli(capsys, "mutate", str(manifest))
    assert status == 2
    assert "cpu" in err


# ------------------------------------------------------------------ 2: bounded cache


def test_overlong_quantity_is_refused_early_naming_the_field() -> None:
    text = "1" * (bounds.MAX_QUANTITY_CHARS + 1)
    assert quantity_value(text) is None
    with pytest.raises(QuantityError, match=r"resources\.limits\.cpu: .* characters long") as info:
        parse_quantity(text, where="resources.limits.cpu")
    assert len(str(info.value)) < 400


def test_review_with_a_large_quantity_names_the_field() -> None:
    answer = review(pod({"limits": {"memory": "9" * 2_900_000}}))["response"]
    assert answer["allowed"] is False
    assert "resources.limits.memory" in answer["status"]["message"]
    assert len(answer["status"]["message"]) < 1000


# ------------------------------------------------------------------ 4: YAML alias bombs

BOMB = "\n".join(
    ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    + ["kind: *i", "apiVersion: v1"]
)


def test_alias_bomb_pod_is_refused_fast(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "bomb.yaml"
    manifest.write_text(BOMB)
    started = time.monotonic()
    status, err = cli(capsys, "mutate", str(manifest))
    assert status == 2
    assert time.monotonic() - started < 2
    assert "anchor" in err and str(manifest) in err
    assert len(err) < 500


def test_alias_bomb_webhook_configuration_is_refused() -> None:
    with pytest.raises(AdmissionConfigError, match="anchor"):
        load_webhook_configuration(BOMB, source="mwc.yaml")


@pytest.mark.parametrize("text", ["[" * 100_000, "a: " * 1000 + "x", "{a: " * 10_000])
def test_deep_yaml_is_refused(text: str) -> None:
    with pytest.raises(YamlInputError, match=r"x\.yaml"):
        load_all(text, source="x.yaml")


def test_error_excerpts_are_bounded() -> None:
    assert len(bounds.excerpt("x" * 1_000_000)) <= bounds.EXCERPT_CHARS + 10
    assert len(bounds.excerpt([["y" * 1000] * 1000] * 1000)) < 1000


# ------------------------------------------------------------------ 5: size bounds


def test_mutate_dev_zero_is_refused_unread(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    status, err = cli(capsys, "mutate", "/dev/zero")
    assert status == 2
    assert "/dev/zero: is a character device, not a regular file" in err
    assert time.monotonic() - started < 5


def test_a_large_file_is_refused_at_the_bound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (bounds.MAX_MANIFEST_BYTES + 1))
    status, err = cli(capsys, "mutate", str(big))
    assert status == 2
    assert "3 MiB" in err and "big.yaml" in err


def test_stdin_is_bounded(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"#" * (bounds.MAX_INITDATA_BYTES + 1)))
    monkeypatch.setattr("sys.stdin", stdin)
    status, err = cli(capsys, "initdata", "digest", "-")
    assert status == 2
    assert "1 MiB" in err and "stdin" in err


def test_a_directory_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = cli(capsys, "mutate", str(tmp_path))
    assert status == 2
    assert "directory" in err


# ------------------------------------------------------------------ 6: gzip members


def test_many_empty_gzip_members_are_refused_fast() -> None:
    member = gzip.compress(b"", mtime=0)
    encoded = base64.b64encode(member * 30_000).decode()  # about 800 KB of empty members
    started = time.monotonic()
    with pytest.raises(initdata.InitdataError, match="MAX_GZIP_MEMBERS"):
        initdata.decode(encoded)
    assert time.monotonic() - started < 1


def test_a_few_members_are_still_accepted() -> None:
    document = b'algorithm = "sha256"\nversion = "0.1.0"\n'
    encoded = base64.b64encode(gzip.compress(document[:10]) + gzip.compress(document[10:])).decode()
    assert initdata.decode(encoded) == document


def test_encoded_input_over_the_bound_is_refused_before_decoding() -> None:
    with pytest.raises(initdata.InitdataError, match="MAX_INITDATA_BYTES"):
        initdata.decode("A" * (bounds.MAX_INITDATA_BYTES + 4))


# ------------------------------------------------------------------ 7: TOML limits

DEEP = b'algorithm = "sha256"\nversion = "0.1.0"\nx = ' + b"[" * 1000 + b"]" * 1000 + b"\n"
HUGE_INT = b'algorithm = "sha256"\nversion = "0.1.0"\nx = ' + b"9" * 5000 + b"\n"
INT65 = b'algorithm = "sha256"\nversion = "0.1.0"\nx = 9223372036854775808\n'
NESTED_65 = b'algorithm = "sha256"\nversion = "0.1.0"\nx = ' + b"[" * 65 + b"]" * 65 + b"\n"


@pytest.mark.parametrize(
    "toml", [DEEP, HUGE_INT, INT65, NESTED_65], ids=["1000-deep", "5000-digit", "2^63", "65"]
)
def test_toml_limits_are_clear_errors(toml: bytes) -> None:
    with pytest.raises(initdata.InitdataError, match="not valid TOML"):
        initdata.parse(toml)


def test_toml_at_the_limits_is_accepted() -> None:
    at_limit = (
        b'algorithm = "sha256"\nversion = "0.1.0"\nx = '
        + b"[" * 64
        + b"]" * 64
        + b"\nn = -9223372036854775808\n"
    )
    assert initdata.parse(at_limit).algorithm == "sha256"


@pytest.mark.parametrize("toml", [DEEP, HUGE_INT])
def test_cli_decode_and_digest_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: bytes
) -> None:
    source = tmp_path / "initdata.toml"
    source.write_bytes(toml)
    assert cli(capsys, "initdata", "digest", str(source))[0] == 2
    assert cli(capsys, "initdata", "decode", initdata.encode(toml))[0] == 2


@pytest.mark.parametrize("toml", [DEEP, HUGE_INT])
def test_pod_vm_reports_every_decode_failure(tmp_path: Path, toml: bytes) -> None:
    from sim.peerpods.cloudconfig import build_user_data

    report = process_user_data(build_user_data(apf_json="{}", initdata=initdata.encode(toml)), tmp_path)
    assert report.error is not None and "TOML" in report.error


# ------------------------------------------------------------------ 9: CLI flags and one decode path


def test_decode_refuses_the_whitespace_the_pod_vm_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    encoded = initdata.encode(b'algorithm = "sha256"\nversion = "0.1.0"\n')
    from sim.peerpods.cloudconfig import build_user_data

    with_space = f" {encoded} "
    report = process_user_data(build_user_data(apf_json="{}", initdata=with_space), Path("/nonexistent-root"))
    assert report.error is not None
    status, err = cli(capsys, "initdata", "decode", with_space)
    assert status == 2
    assert "position 0" in err


def test_encode_validates_as_decode_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "md5.toml"
    source.write_bytes(b'algorithm = "md5"\nversion = "0.1.0"\n')
    status, err = cli(capsys, "initdata", "encode", str(source))
    assert status == 2
    assert "md5" in err and str(source) in err


@pytest.mark.parametrize("url", ["https://127.0.0.1:99999/x", "https://[::1/x", "https://127.0.0.1:0/x"])
def test_bad_webhook_url_exits_2_naming_the_flag(capsys: pytest.CaptureFixture[str], url: str) -> None:
    status, err = cli(capsys, "run", "--target", "webhook", "--webhook-url", url)
    assert status == 2
    assert "--webhook-url" in err


@pytest.mark.parametrize("where", ["missing-dir/ca.pem", "."])
def test_self_signed_into_a_missing_dir_or_at_a_dir_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    pytest.importorskip("granian")
    status, err = cli(capsys, "webhook", "serve", "--port", "1", "--self-signed", str(tmp_path / where))
    assert status == 2
    assert "--self-signed" in err
