"""The steps' reading of a target's cloud-config: what a pod VM accepts, malformed output a failure."""

from __future__ import annotations

import pytest

from steps.expect import cloud_config_files

BOMB = "#cloud-config\n" + "\n".join(
    [
        "a: &a [x, x, x, x, x, x, x, x, x]",
        *(
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]"
            for i in range(12)
        ),
        "write_files: *m",
    ]
)


def test_write_files_are_read_as_path_to_content() -> None:
    text = "#cloud-config\nwrite_files:\n- path: /run/peerpod/apf.json\n  content: '{}'\n- path: /x\n"
    assert cloud_config_files(text) == {"/run/peerpod/apf.json": "{}", "/x": ""}


def test_anchors_a_pod_vm_accepts_are_accepted() -> None:
    text = "#cloud-config\nc: &c '{}'\nwrite_files:\n- path: /run/peerpod/apf.json\n  content: *c\n"
    assert cloud_config_files(text) == {"/run/peerpod/apf.json": "{}"}


def test_alias_bomb_fails_the_scenario_with_a_bounded_reason() -> None:
    with pytest.raises(AssertionError) as failure:
        cloud_config_files(BOMB)
    message = str(failure.value)
    assert message.startswith("write_files[0] is not a mapping")
    assert len(message) < 1000  # excerpts (and pytest's own explanation) stay bounded


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("#cloud-config\n- a list\n", "not a mapping"),
        ("#cloud-config\nwrite_files: {path: /x}\n", "write_files is not a list"),
        ("#cloud-config\nwrite_files: [plain]\n", "write_files[0] is not a mapping"),
        ("#cloud-config\nwrite_files: [{content: x}]\n", "write_files[0] has no path"),
        ("#cloud-config\nwrite_files: [\n", "not valid YAML"),
        ("#!/bin/sh\necho\n", "not a cloud-config"),
    ],
)
def test_malformed_cloud_config_is_a_failure_naming_it(text: str, named: str) -> None:
    with pytest.raises(AssertionError, match=named.replace("[", r"\[").replace("]", r"\]")):
        cloud_config_files(text)
