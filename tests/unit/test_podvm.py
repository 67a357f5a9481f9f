"""The pod VM side: which files land where, the digest, the dummy, and the report format."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib

import pytest

from sim.peerpods import initdata
from sim.peerpods.cloudconfig import build_user_data
from sim.peerpods.podvm import ALLOWED_FILES, DIGEST_PATH, GuestReport, GuestReportError, process_user_data

APF = '{"pod-network": {}}'
TOML = b"""algorithm = "sha512"
version = "0.1.0"

[data]
"aa.toml" = "aa"
"cdh.toml" = "cdh"
"policy.rego" = "package agent_policy"
"../../etc/passwd" = "root::0:0"
"/etc/shadow" = "x"
"sub/../aa.toml" = "also aa"
"notes.txt" = "n"
"""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(root: pathlib.Path) -> dict[str, bytes]:
    return {
        "/" + str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()
    }


def test_initdata_files_digest_and_report(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "guest"
    encoded = initdata.encode(TOML)
    report = process_user_data(
        build_user_data(apf_json=APF, initdata=encoded), root, machine="s390-ccw-virtio"
    )
    assert report.error is None
    assert (report.arch, report.machine, report.dummy) == ("s390x", "s390-ccw-virtio", False)
    assert report.algorithm == "sha512"
    assert report.digest == hashlib.sha512(TOML).hexdigest()
    on_disk = files_under(root)
    assert on_disk["/run/peerpod/initdata.digest"] == report.digest.encode()
    assert on_disk["/run/peerpod/cdh.toml"] == b"cdh"
    assert on_disk["/run/peerpod/policy.rego"] == b"package agent_policy"
    assert on_disk["/run/peerpod/aa.toml"] in (
        b"aa",
        b"also aa",
    )  # 'sub/../aa.toml' normalises like Go's Join
    assert on_disk["/run/peerpod/apf.json"] == APF.encode()
    assert on_disk["/run/peerpod/initdata"] == encoded.encode()
    assert set(on_disk) == {
        "/run/peerpod/" + name for name in (*ALLOWED_FILES, "apf.json", "initdata", "initdata.digest")
    }
    assert report.written == {path: sha(content) for path, content in on_disk.items()}
    assert sorted(report.ignored) == ["../../etc/passwd", "/etc/shadow", "notes.txt"]


def test_nothing_escapes_the_root(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "guest"
    outside_before = set(os.listdir(tmp_path))
    user_data = (
        "#cloud-config\nwrite_files:\n"
        "- {path: /etc/passwd, content: x}\n"
        "- {path: /run/peerpod/../../etc/x, content: x}\n"
        "- {path: /run/peerpod/sub/x, content: x}\n"
        "- {path: ../escape, content: x}\n"
        f"- {{path: /run/peerpod/initdata, content: {initdata.encode(TOML)}}}\n"
    )
    report = process_user_data(user_data, root)
    assert report.error is None
    assert set(os.listdir(tmp_path)) == outside_before | {"guest"}
    assert all(path.startswith("/run/peerpod/") for path in files_under(root))
    assert not (root / "etc").exists()
    assert "/etc/passwd" not in report.written


def test_write_files_are_only_the_six_caa_lists(tmp_path: pathlib.Path) -> None:
    """CAA's isAllowed compares the path as written with WriteFilesList (pkg/userdata/provision.go)."""
    listed = ["aa.toml", "cdh.toml", "apf.json", "auth.json", "scratch-space.marker"]
    unlisted = ["policy.rego", "agent-config.toml", "other", "./aa.toml", "sub/../cdh.toml"]
    user_data = "#cloud-config\nwrite_files:\n" + "".join(
        f"- {{path: /run/peerpod/{name}, content: x}}\n" for name in listed + unlisted
    )
    report = process_user_data(user_data, tmp_path / "guest")
    assert report.error is None
    written = {path for path in report.written if path != "/run/peerpod/initdata"}
    assert written - {"/run/peerpod/initdata.digest"} == {f"/run/peerpod/{name}" for name in listed}


def test_symlink_planted_in_root_is_not_followed(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "guest"
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "run").mkdir(parents=True)
    (root / "run" / "peerpod").symlink_to(outside)
    report = process_user_data(build_user_data(apf_json=APF, initdata=None), root)
    assert report.error is not None and "leave the guest root" in report.error
    assert list(outside.iterdir()) == []


def test_no_initdata_gives_the_dummy(tmp_path: pathlib.Path) -> None:
    report = process_user_data(build_user_data(apf_json=APF, initdata=None), tmp_path)
    assert report.dummy is True
    assert report.error is None
    assert report.algorithm == "sha256"
    assert report.digest == hashlib.sha256(initdata.DUMMY_TOML).hexdigest()
    assert (tmp_path / "run/peerpod/aa.toml").read_bytes() == b""
    assert (tmp_path / "run/peerpod/initdata").read_text() == initdata.DUMMY_ENCODED
    assert (tmp_path / DIGEST_PATH.lstrip("/")).read_text() == report.digest


def test_empty_user_data_gives_the_dummy(tmp_path: pathlib.Path) -> None:
    report = process_user_data("", tmp_path)
    assert report.dummy and report.error is None
    assert set(report.written) == {"/run/peerpod/initdata", "/run/peerpod/aa.toml", DIGEST_PATH}


@pytest.mark.parametrize(
    ("encoded", "message"),
    [
        (initdata.encode(TOML)[:-1], "padding"),
        ("QUFBQQ==", "not gzip"),
        (initdata.encode(b'algorithm = "md5"\nversion = "0.1.0"\n'), "unknown algorithm 'md5'"),
        (initdata.encode(b"[[["), "not valid TOML"),
    ],
)
def test_bad_initdata_is_reported_and_nothing_from_it_written(
    tmp_path: pathlib.Path, encoded: str, message: str
) -> None:
    report = process_user_data(build_user_data(apf_json=APF, initdata=encoded), tmp_path)
    assert report.error is not None and message in report.error
    assert report.digest == "" and report.algorithm == ""
    assert set(report.written) == {"/run/peerpod/apf.json", "/run/peerpod/initdata"}
    assert not (tmp_path / "run/peerpod/aa.toml").exists()
    assert not (tmp_path / DIGEST_PATH.lstrip("/")).exists()


def test_bad_user_data_is_reported(tmp_path: pathlib.Path) -> None:
    report = process_user_data("#cloud-config\nbootcmd: [reboot]\n", tmp_path)
    assert report.error is not None and "bootcmd" in report.error
    assert report.written == {}


# ----------------------------------------------------------------- report JSON


def test_report_json_keys_and_round_trip(tmp_path: pathlib.Path) -> None:
    report = process_user_data(build_user_data(apf_json=APF, initdata=initdata.encode(TOML)), tmp_path)
    text = report.to_json()
    assert list(json.loads(text)) == [
        "arch",
        "machine",
        "algorithm",
        "digest",
        "dummy",
        "written",
        "ignored",
        "error",
    ]
    assert GuestReport.from_json(text) == GuestReport(
        arch=report.arch,
        machine=report.machine,
        algorithm=report.algorithm,
        digest=report.digest,
        dummy=report.dummy,
        written=dict(sorted(report.written.items())),
        ignored=sorted(report.ignored),
        error=None,
    )


def test_report_json_is_stable() -> None:
    report = GuestReport(
        arch="s390x",
        machine=None,
        algorithm="sha256",
        digest="ab",
        dummy=True,
        written={"/run/peerpod/b": "2", "/run/peerpod/a": "1"},
        ignored=["z", "a"],
    )
    assert report.to_json() == (
        '{"arch": "s390x", "machine": null, "algorithm": "sha256", "digest": "ab", "dummy": true, '
        '"written": {"/run/peerpod/a": "1", "/run/peerpod/b": "2"}, "ignored": ["a", "z"], "error": null}'
    )


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"arch": "s390x"}',
        '{"arch": 1, "machine": null, "algorithm": "", "digest": "", "dummy": false, "written": {}, '
        '"ignored": [], "error": null}',
        '{"arch": "s390x", "machine": null, "algorithm": "", "digest": "", "dummy": "no", "written": {}, '
        '"ignored": [], "error": null}',
        '{"arch": "s390x", "machine": null, "algorithm": "", "digest": "", "dummy": false, '
        '"written": {"a": 1}, '
        '"ignored": [], "error": null}',
        '{"arch": "s390x", "machine": null, "algorithm": "", "digest": "", "dummy": false, "written": {}, '
        '"ignored": [], "error": null, "extra": 1}',
    ],
)
def test_report_from_json_refuses_wrong_shapes(text: str) -> None:
    with pytest.raises(GuestReportError):
        GuestReport.from_json(text)
