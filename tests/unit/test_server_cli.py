"""``webhook serve`` and ``diff`` refuse bad input by name, before anything listens."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sim.harness.cli import main
from sim.harness.difftest import compare, reference_endpoint
from sim.peerpods.webhook import WebhookSettings


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--port", "70000", "--self-signed"], "--port"),
        (["--workers", "0", "--self-signed"], "--workers"),
        ([], "--cert"),
        (["--self-signed", "--cert", "x.pem", "--key", "y.pem"], "--self-signed"),
        (["--cert", "nope.crt", "--key", "nope.key"], "nope.key"),
        (["--read-timeout", "0", "--self-signed"], "timeout"),
    ],
)
def test_serve_refuses_bad_input(args: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["webhook", "serve", *args]) == 2
    assert named in capsys.readouterr().err


def test_diff_refuses_three_urls(capsys: pytest.CaptureFixture[str]) -> None:
    urls = [a for u in ("https://a/x", "https://b/x", "https://c/x") for a in ("--webhook-url", u)]
    assert main(["diff", *urls]) == 2
    assert "at most two" in capsys.readouterr().err


def test_diff_refuses_a_missing_ca(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "--webhook-url", "https://a/x", "--webhook-ca", str(tmp_path / "ca.pem")]) == 2
    assert "ca.pem" in capsys.readouterr().err


def test_compare_finds_and_shrinks_a_difference() -> None:
    left = reference_endpoint(WebhookSettings())
    right = reference_endpoint(WebhookSettings(target_runtimeclass="kata"))
    result = compare(left, right, examples=200, random_seed=5)
    assert result.difference is not None
    pod = result.difference.pod
    assert pod["spec"]["runtimeClassName"] in ("kata", "kata-remote")
    assert len(pod["spec"]["containers"]) == 1  # shrunk
    assert "initContainers" not in pod["spec"]


def test_compare_of_equal_endpoints_is_clean_and_reproducible() -> None:
    same = reference_endpoint(WebhookSettings())
    first = compare(same, same, examples=50, random_seed=9)
    assert first.difference is None
    assert first.tried == 50


def test_serve_names_a_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["webhook", "serve", "--self-signed", "--port", str(port)]) == 2
    assert f"--port {port}" in capsys.readouterr().err
