"""The cloud-config user data CAA writes and the pod VM reads."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.errors import ConformanceInputError
from sim.peerpods.cloudconfig import (
    APF_PATH,
    AUTH_PATH,
    INITDATA_PATH,
    CloudConfigError,
    WriteFile,
    build_user_data,
    parse_user_data,
)

APF = '{\n    "pod-network": {"podip": "10.128.0.5/23"}\n}'


def test_build_has_header_and_path_content_only() -> None:
    text = build_user_data(apf_json=APF, initdata="H4sIAAAA", auth_json='{"auths": {}}')
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    assert doc == {
        "write_files": [
            {"path": APF_PATH, "content": APF},
            {"path": AUTH_PATH, "content": '{"auths": {}}'},
            {"path": INITDATA_PATH, "content": "H4sIAAAA"},
        ]
    }


def test_build_without_initdata_or_auth() -> None:
    files = parse_user_data(build_user_data(apf_json=APF, initdata=None))
    assert files == [WriteFile(APF_PATH, APF)]
    assert parse_user_data(build_user_data(apf_json=APF, initdata="")) == files


def test_long_initdata_stays_on_one_line() -> None:
    long_value = "A" * 5000
    text = build_user_data(apf_json="{}", initdata=long_value)
    assert long_value in text.splitlines()[-1]


@settings(max_examples=100, deadline=None)
@given(st.text(), st.one_of(st.none(), st.text(min_size=1)), st.one_of(st.none(), st.text()))
def test_round_trip(apf: str, init: str | None, auth: str | None) -> None:
    files = parse_user_data(build_user_data(apf_json=apf, initdata=init, auth_json=auth))
    expected = [WriteFile(APF_PATH, apf)]
    if auth is not None:
        expected.append(WriteFile(AUTH_PATH, auth))
    if init:
        expected.append(WriteFile(INITDATA_PATH, init))
    assert files == expected


def test_parse_permissions_and_null_content() -> None:
    text = "#cloud-config\nwrite_files:\n- path: /run/peerpod/x\n  permissions: '0600'\n  content:\n"
    assert parse_user_data(text) == [WriteFile("/run/peerpod/x", "", "0600")]


def test_empty_documents() -> None:
    assert parse_user_data("#cloud-config\n") == []
    assert parse_user_data("#cloud-config\nwrite_files:\n") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("write_files: []\n", "does not start with '#cloud-config'"),
        ("", "does not start with"),
        ("#cloud-config\nwrite_files: [\n", "not valid YAML"),
        ("#cloud-config\n- a\n", "must be a mapping"),
        ("#cloud-config\nruncmd: [ls]\n", "unsupported top-level key\\(s\\): runcmd"),
        ("#cloud-config\nwrite_files: {}\n", "write_files must be a list"),
        ("#cloud-config\nwrite_files: [x]\n", r"write_files\[0\]: expected a mapping"),
        (
            "#cloud-config\nwrite_files:\n- content: x\n",
            r"write_files\[0\]: 'path' must be a non-empty string",
        ),
        ("#cloud-config\nwrite_files:\n- path: /a\n  owner: root\n", r"unknown key\(s\) owner"),
        (
            "#cloud-config\nwrite_files:\n- path: /a\n  content: [1]\n",
            r"\[0\] \(/a\): 'content' must be a string",
        ),
        (
            "#cloud-config\nwrite_files:\n- path: /a\n  permissions: 0644\n",
            "'permissions' must be a quoted string",
        ),
    ],
)
def test_parse_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(CloudConfigError, match=message):
        parse_user_data(text)
    assert issubclass(CloudConfigError, ConformanceInputError)
