"""The certificate's identity: the product under test (--product FILE), the host, the installation."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from sim.errors import ConformanceInputError
from sim.harness.report import identity

GOOD = 'vendor: Example\nproduct: Peer Pods\nversion: "1.0"\ncontact: team@example.com\n'


def product(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "PRODUCT.yaml"
    path.write_text(text, encoding="utf-8")
    return identity.load_product(path)


def test_a_good_product_file(tmp_path: Path) -> None:
    assert product(tmp_path, GOOD + "website_url: https://example.com/pp\n") == {
        "vendor": "Example",
        "product": "Peer Pods",
        "version": "1.0",
        "contact": "team@example.com",
        "website_url": "https://example.com/pp",
    }


def test_every_bad_field_is_named_once(tmp_path: Path) -> None:
    text = "vendor: ''\nversion: 1.0\ncontact: nobody\nwebsite_url: example.com\ncolour: red\n"
    with pytest.raises(ConformanceInputError) as info:
        product(tmp_path, text)
    message = str(info.value)
    assert message.startswith(f"--product {tmp_path / 'PRODUCT.yaml'}:")
    lines = message.splitlines()[1:]
    assert [line.split(":")[0].strip() for line in lines] == [
        "colour",
        "vendor",
        "product",
        "version",
        "contact",
        "website_url",
    ]
    assert "vendor: empty" in message
    assert "product: missing" in message
    assert 'version: must be a string (quote it: version: "1.0")' in message
    assert "contact: 'nobody' is neither an e-mail address nor an http(s) URL" in message
    assert "colour: unknown field" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("- a list\n", "expected a mapping"), ("a: [\n", "--product"), ("", "expected a mapping")],
)
def test_a_file_that_is_not_a_product_mapping(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConformanceInputError, match=expected):
        product(tmp_path, text)


def test_a_missing_product_file(tmp_path: Path) -> None:
    with pytest.raises(ConformanceInputError, match="--product"):
        identity.load_product(tmp_path / "absent.yaml")


def test_the_host_block() -> None:
    host = identity.host_identity()
    assert set(host) == {"host", "os", "architecture", "python"} and all(host.values())


class FakeDistribution:
    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def read_text(self, name: str) -> str | None:
        return self.files.get(name)


def test_a_wheel_install_is_named_by_its_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = "ab" * 32
    record = "sim/__init__.py,sha256=xyz,10\n"
    files = {
        "direct_url.json": json.dumps(
            {"url": "file:///w.whl", "archive_info": {"hashes": {"sha256": wheel}}}
        ),
        "RECORD": record,
    }
    fake: Any = FakeDistribution(files)
    monkeypatch.setattr(metadata, "distribution", lambda name: fake)
    facts = identity.installed_identity()
    assert facts == {"wheel_sha256": wheel, "record_sha256": hashlib.sha256(record.encode()).hexdigest()}


def test_an_editable_install_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    fake: Any = FakeDistribution(
        {"direct_url.json": json.dumps({"url": "file:///x", "dir_info": {"editable": True}})}
    )
    monkeypatch.setattr(metadata, "distribution", lambda name: fake)
    assert identity.installed_identity() == {"installed": "editable, from a checkout"}
