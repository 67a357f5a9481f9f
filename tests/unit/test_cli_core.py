"""``peerpods-conformance mutate`` and ``initdata``: output, and exit 2 with a clear message on bad input."""

from __future__ import annotations

import hashlib
import io
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

from sim.harness.cli import main
from sim.peerpods import initdata
from sim.peerpods.webhook import ANN_MEMORY, ANN_VCPUS

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: demo
spec:
  runtimeClassName: kata-remote
  containers:
  - name: app
    image: quay.io/example/app:1
    resources:
      requests: {cpu: "2", memory: 4Gi}
      limits: {cpu: "3", memory: 5Gi}
"""
TOML = b'algorithm = "sha384"\nversion = "0.1.0"\n\n[data]\n"aa.toml" = "x"\n'


@pytest.fixture
def pod_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "pod.yaml"
    path.write_text(POD)
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def feed_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


# ----------------------------------------------------------------- mutate


def test_mutate_prints_the_mutated_pod(pod_file: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["mutate", str(pod_file)], capsys)
    assert code == 0
    pod = yaml.safe_load(out)
    assert pod["metadata"]["annotations"] == {ANN_VCPUS: "3", ANN_MEMORY: "5120"}
    assert pod["spec"]["containers"][0]["resources"] == {
        "requests": {"kata.peerpods.io/vm": "1"},
        "limits": {"kata.peerpods.io/vm": "1"},
    }


def test_mutate_reads_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    feed_stdin(monkeypatch, POD.encode())
    code, out, _ = run(["mutate", "-"], capsys)
    assert code == 0 and ANN_VCPUS in out


def test_mutate_env_and_flags(
    pod_file: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TARGET_RUNTIMECLASS", "other")
    monkeypatch.setenv("POD_VM_EXTENDED_RESOURCE", "env.io/vm")
    code, out, _ = run(["mutate", str(pod_file)], capsys)
    assert code == 0
    assert yaml.safe_load(out) == yaml.safe_load(POD)  # runtime class no longer matches
    code, out, _ = run(["mutate", str(pod_file), "--runtimeclass", "kata-remote"], capsys)
    assert code == 0
    assert yaml.safe_load(out)["spec"]["containers"][0]["resources"]["limits"] == {"env.io/vm": "1"}
    _, out, _ = run(
        ["mutate", str(pod_file), "--runtimeclass", "kata-remote", "--extended-resource", "flag.io/vm"],
        capsys,
    )
    assert yaml.safe_load(out)["spec"]["containers"][0]["resources"]["requests"] == {"flag.io/vm": "1"}


def test_mutate_document_profile(pod_file: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["mutate", str(pod_file), "--no-annotations"], capsys)
    assert code == 0 and "annotations" not in yaml.safe_load(out)["metadata"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "apiVersion: apps/v1\nkind: Deployment\n",
            "expected apiVersion v1, kind Pod; found apps/v1/Deployment",
        ),
        ("- a\n- b\n", "expected a Pod object, found a YAML list"),
        ("kind: Pod\n  bad: [\n", "not valid YAML"),
        ("", "found 0"),
        (POD + "---\n" + POD, "found 2"),
        (POD.replace('cpu: "3"', "cpu: 3x"), "containers[0] (app).resources.limits.cpu: '3x'"),
    ],
)
def test_mutate_bad_input_exits_2(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    code, out, err = run(["mutate", str(path)], capsys)
    assert code == 2
    assert out == ""
    assert err.startswith("peerpods-conformance: error: ")
    assert message in err
    assert "Traceback" not in err


def test_mutate_missing_file(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["mutate", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "nope.yaml" in err and "cannot read" in err


# ----------------------------------------------------------------- initdata


def test_encode_decode_digest(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml_path = tmp_path / "initdata.toml"
    toml_path.write_bytes(TOML)
    code, encoded, _ = run(["initdata", "encode", str(toml_path)], capsys)
    assert code == 0
    encoded = encoded.strip()
    assert initdata.decode(encoded) == TOML

    code, out, _ = run(["initdata", "decode", encoded], capsys)
    assert code == 0 and out.encode() == TOML

    encoded_path = tmp_path / "initdata.b64"
    encoded_path.write_text(encoded + "\n")
    code, out, _ = run(["initdata", "decode", str(encoded_path)], capsys)
    assert code == 0 and out.encode() == TOML

    code, out, _ = run(["initdata", "digest", str(toml_path)], capsys)
    assert code == 0 and out.strip() == hashlib.sha384(TOML).hexdigest()
    code, out, _ = run(["initdata", "digest", str(toml_path), "--algorithm", "sha256"], capsys)
    assert out.strip() == hashlib.sha256(TOML).hexdigest()


def test_initdata_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    feed_stdin(monkeypatch, TOML)
    code, out, _ = run(["initdata", "digest", "-"], capsys)
    assert code == 0 and out.strip() == hashlib.sha384(TOML).hexdigest()
    feed_stdin(monkeypatch, initdata.encode(TOML).encode())
    code, out, _ = run(["initdata", "decode", "-"], capsys)
    assert code == 0 and out.encode() == TOML


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["initdata", "decode", initdata.encode(TOML)[:-1]], "padding"),
        (["initdata", "decode", "QUFBQQ=="], "not gzip"),
        (
            ["initdata", "decode", initdata.encode(b'algorithm = "md5"\nversion = "0.1.0"\n')],
            "unknown algorithm 'md5'",
        ),
        (["initdata", "encode", "/nonexistent/initdata.toml"], "/nonexistent/initdata.toml: cannot read"),
    ],
)
def test_initdata_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(argv, capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_digest_of_invalid_document_names_the_file(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b'version = "0.1.0"\n')
    code, _, err = run(["initdata", "digest", str(path)], capsys)
    assert code == 2 and f"{path}: missing 'algorithm'" in err


def test_console_script_end_to_end(tmp_path: pathlib.Path) -> None:
    script = shutil.which("peerpods-conformance", path=str(pathlib.Path(sys.executable).parent))
    assert script is not None, "console script not installed in the venv"
    path = tmp_path / "pod.yaml"
    path.write_text(POD)
    done = subprocess.run([script, "mutate", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["metadata"]["annotations"][ANN_VCPUS] == "3"
    path.write_text("kind: ConfigMap\napiVersion: v1\n")
    done = subprocess.run([script, "mutate", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "peerpods-conformance: error:" in done.stderr and "ConfigMap" in done.stderr
    assert "Traceback" not in done.stderr


def test_decode_prints_the_exact_bytes(capsys: pytest.CaptureFixture[str]) -> None:
    no_newline = TOML.rstrip(b"\n")
    code, out, _ = run(["initdata", "decode", initdata.encode(no_newline)], capsys)
    assert code == 0 and out.encode() == no_newline


def test_expected_digest_catches_the_trailing_newline_mistake(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shown_digest = hashlib.sha384(TOML.rstrip(b"\n")).hexdigest()  # hashed as displayed, not as delivered
    encoded = initdata.encode(TOML)
    code, out, err = run(["initdata", "decode", encoded, "--expect", shown_digest], capsys)
    assert code == 2 and out == ""
    assert f"sha384 digest is {hashlib.sha384(TOML).hexdigest()}" in err
    assert f"exact {len(TOML)} TOML bytes, which ends with a newline" in err
    good = hashlib.sha384(TOML).hexdigest()
    assert run(["initdata", "decode", encoded, "--expect", good.upper()], capsys)[0] == 0
    path = tmp_path / "i.toml"
    path.write_bytes(TOML)
    assert run(["initdata", "digest", str(path), "--expect", good], capsys)[0] == 0
    code, _, err = run(["initdata", "digest", str(path), "--expect", shown_digest], capsys)
    assert code == 2 and str(path) in err


def test_decode_of_a_missing_file_name_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["initdata", "decode", "./no/such/initdata.b64"], capsys)
    assert code == 2 and "no file named './no/such/initdata.b64'" in err


def test_decode_of_a_bad_file_names_the_file(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.b64"
    path.write_text("QUFBQQ==\n")
    code, _, err = run(["initdata", "decode", str(path)], capsys)
    assert code == 2 and f"{path}: initdata is not gzip" in err


def test_mutate_notes_an_unmatched_runtime_class(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text(POD.replace("kata-remote", "runc"))
    code, out, err = run(["mutate", str(path)], capsys)
    assert code == 0
    assert yaml.safe_load(out) == yaml.safe_load(POD.replace("kata-remote", "runc"))
    assert "'runc', not 'kata-remote'" in err
