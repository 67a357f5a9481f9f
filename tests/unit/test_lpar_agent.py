"""The guest agent (podvm-agent, Go) against the reference pod VM logic (sim/peerpods/podvm.py).

The agent is built for this host and run in its ``process`` mode on the same user data
the reference processes; both reports must agree field by field (error texts may differ,
the presence of an error may not). This is what lets the s390x guest's own report be
trusted as "the pod VM's behaviour" on qemu:///system.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from plumbum import local

from sim.lpar.assets import AGENT_SOURCE
from sim.lpar.builder import BuildError, go_binary
from sim.peerpods.cloudconfig import build_user_data
from sim.peerpods.initdata import DUMMY_ENCODED, encode
from sim.peerpods.podvm import process_user_data


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        go = go_binary()
    except BuildError as exc:
        pytest.skip(str(exc))
    out = tmp_path_factory.mktemp("agent") / "podvm-agent"
    build_agent(go, AGENT_SOURCE, out)
    return out


def build_agent(go: str, source: Path, out: Path) -> None:
    """Build the agent for this host in module mode, as the image builder does: go.mod pins
    the libraries, go.sum verifies them (fetched through the Go module proxy once)."""
    env = {"GO111MODULE": "on", "GOFLAGS": "-mod=readonly", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    with local.cwd(source), local.env(**env):
        local[go]["build", "-o", str(out), "."](timeout=600)


def run_agent(agent: Path, user_data: str, tmp: Path) -> dict[str, Any]:
    (tmp / "user-data").write_text(user_data)
    root = tmp / "agent-root"
    out = local[str(agent)]("process", "--user-data", str(tmp / "user-data"), "--root", str(root), timeout=60)
    report: dict[str, Any] = json.loads(out)
    return report


def toml(algorithm: str, data: str = '"aa.toml" = "a"\n') -> bytes:
    return f'algorithm = "{algorithm}"\nversion = "0.1.0"\n\n[data]\n{data}'.encode()


CASES: dict[str, str] = {
    "no initdata": build_user_data(apf_json="{}", initdata=None),
    "empty user data": "",
    "sha256": build_user_data(apf_json="{}", initdata=encode(toml("sha256"))),
    "sha384 + all files": build_user_data(
        apf_json="{}",
        initdata=encode(toml("sha384", '"aa.toml" = "a"\n"cdh.toml" = "c"\n"policy.rego" = "package p"\n')),
    ),
    "sha512": build_user_data(apf_json="{}", initdata=encode(toml("sha512"))),
    "escape keys": build_user_data(
        apf_json="{}",
        initdata=encode(
            toml("sha256", '"aa.toml" = "a"\n"../../etc/x" = "e"\n"shadow" = "s"\n"./cdh.toml" = "c"\n')
        ),
    ),
    "write_files outside /run/peerpod": "#cloud-config\nwrite_files:\n- path: /etc/passwd\n  content: x\n"
    "- path: /run/peerpod/../../etc/y\n  content: y\n- path: /run/peerpod/sub/z\n  content: z\n",
    "write_files CAA does not list": "#cloud-config\nwrite_files:\n- path: /run/peerpod/other\n  content: o\n"
    "- path: /run/peerpod/./apf.json\n  content: a\n"
    "- path: /run/peerpod/scratch-space.marker\n  content: ''\n"
    "- path: /run/peerpod/auth.json\n  content: '{}'\n",
    "missing padding": build_user_data(apf_json="{}", initdata=encode(toml("sha256"))[:-1]),
    "not base64": build_user_data(apf_json="{}", initdata="not *base64*!"),
    "not gzip": build_user_data(apf_json="{}", initdata=base64.b64encode(toml("sha256")).decode()),
    "not toml": build_user_data(
        apf_json="{}", initdata=base64.b64encode(gzip.compress(b"a = = b", mtime=0)).decode()
    ),
    "md5": build_user_data(apf_json="{}", initdata=encode(toml("md5"))),
    "no version": build_user_data(
        apf_json="{}", initdata=encode(b'algorithm = "sha256"\n[data]\n"aa.toml" = ""\n')
    ),
    "other version": build_user_data(
        apf_json="{}", initdata=encode(b'algorithm = "sha384"\nversion = "0.9.9"\n[data]\n"aa.toml" = ""\n')
    ),
    "absolute keys": build_user_data(
        apf_json="{}",
        initdata=encode(
            toml("sha256", '"/aa.toml" = "a"\n"/run/peerpod/cdh.toml" = "c"\n"//policy.rego" = "p"\n')
        ),
    ),
    "not a cloud-config": "#!/bin/sh\necho hi\n",
    "unknown top-level key": "#cloud-config\nruncmd: [reboot]\n",
    # issue 11: the bounds both implementations share (sim/bounds.py, podvm-agent/userdata.go)
    "toml nested 1000 deep": build_user_data(
        apf_json="{}", initdata=encode(b"x = " + b"[" * 1000 + b"]" * 1000 + b"\n" + toml("sha256"))
    ),
    "toml nested 65 deep": build_user_data(
        apf_json="{}", initdata=encode(b"x = " + b"[" * 65 + b"1" + b"]" * 65 + b"\n" + toml("sha256"))
    ),
    "toml nested 64 deep": build_user_data(
        apf_json="{}", initdata=encode(b"x = " + b"[" * 64 + b"1" + b"]" * 64 + b"\n" + toml("sha256"))
    ),
    "toml 5000-digit integer": build_user_data(
        apf_json="{}", initdata=encode(b"x = " + b"9" * 5000 + b"\n" + toml("sha256"))
    ),
    "toml integer 2^63": build_user_data(
        apf_json="{}", initdata=encode(b"x = 9223372036854775808\n" + toml("sha256"))
    ),
    "toml integer -2^63": build_user_data(
        apf_json="{}", initdata=encode(b"x = -9223372036854775808\n" + toml("sha256"))
    ),
    "17 gzip members": build_user_data(
        apf_json="{}",
        initdata=base64.b64encode(
            gzip.compress(toml("sha256"), mtime=0) + gzip.compress(b"", mtime=0) * 16
        ).decode(),
    ),
    "16 gzip members": build_user_data(
        apf_json="{}",
        initdata=base64.b64encode(
            gzip.compress(toml("sha256"), mtime=0) + gzip.compress(b"", mtime=0) * 15
        ).decode(),
    ),
    "encoded over 1 MiB": build_user_data(apf_json="{}", initdata="A" * ((1 << 20) + 4)),
    "empty initdata entry": "#cloud-config\nwrite_files:\n- path: /run/peerpod/initdata\n  content: ''\n",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_agent_agrees_with_the_reference(agent: Path, tmp_path: Path, case: str) -> None:
    user_data = CASES[case]
    guest = run_agent(agent, user_data, tmp_path)
    reference = json.loads(process_user_data(user_data, tmp_path / "reference-root").to_json())
    assert (guest["error"] is None) == (reference["error"] is None), (guest["error"], reference["error"])
    guest.pop("error")
    reference.pop("error")
    assert guest == reference
    for path in guest["written"]:  # the same bytes landed in both roots
        assert (tmp_path / "agent-root" / path.lstrip("/")).read_bytes() == (
            tmp_path / "reference-root" / path.lstrip("/")
        ).read_bytes()


@pytest.mark.parametrize("case", ["no version", "other version"])
def test_agent_does_not_check_the_version(agent: Path, tmp_path: Path, case: str) -> None:
    report = run_agent(agent, CASES[case], tmp_path)
    assert report["error"] is None and "/run/peerpod/aa.toml" in report["written"], report


def test_absolute_keys_are_joined_as_go_joins_them(agent: Path, tmp_path: Path) -> None:
    report = run_agent(agent, CASES["absolute keys"], tmp_path)
    assert report["ignored"] == ["/run/peerpod/cdh.toml"], report
    assert {"/run/peerpod/aa.toml", "/run/peerpod/policy.rego"} <= set(report["written"]), report


def test_agent_dummy_initdata_is_the_reference_one() -> None:
    source = (AGENT_SOURCE / "userdata.go").read_text()
    assert f'const DummyEncoded = "{DUMMY_ENCODED}"' in source


@pytest.mark.parametrize(
    ("case", "mention"),
    [
        ("missing padding", "padding"),
        ("not base64", "base64"),
        ("not gzip", "gzip"),
        ("not toml", "TOML"),
        ("md5", "md5"),
    ],
)
def test_agent_errors_name_the_problem(agent: Path, tmp_path: Path, case: str, mention: str) -> None:
    error = run_agent(agent, CASES[case], tmp_path)["error"]
    assert error is not None and mention in error, error
