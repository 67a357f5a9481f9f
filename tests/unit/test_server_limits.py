"""Connection limits of the webhook server: chosen per worker, fitted to the open-files limit."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from sim.errors import ConformanceInputError
from sim.harness.cli import main
from sim.server.limits import (
    MAX_CONNECTIONS_PER_WORKER,
    RESERVED_FDS,
    connection_limit,
    open_files_limit,
)


def test_default_is_the_per_worker_limit_when_descriptors_allow() -> None:
    assert connection_limit(None, 1 << 20) == MAX_CONNECTIONS_PER_WORKER


def test_default_shrinks_to_fit_the_open_files_limit() -> None:
    assert connection_limit(None, 1024) == 1024 - RESERVED_FDS


def test_no_room_at_all_is_named() -> None:
    with pytest.raises(ConformanceInputError, match="open-files limit 100"):
        connection_limit(None, 100)


@pytest.mark.parametrize("requested", [0, -5])
def test_non_positive_limit_is_refused(requested: int) -> None:
    with pytest.raises(ConformanceInputError, match=f"--max-connections {requested}"):
        connection_limit(requested, 1 << 20)


def test_limit_past_the_open_files_limit_is_refused_naming_both() -> None:
    with pytest.raises(ConformanceInputError, match=r"--max-connections 5000 .* open-files limit 4096"):
        connection_limit(5000, 4096)


def test_explicit_limit_within_the_descriptors_is_kept() -> None:
    assert connection_limit(64, 4096) == 64


def test_open_files_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        got = open_files_limit()
        now_soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert got == now_soft
        assert hard == resource.RLIM_INFINITY or now_soft == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("value", ["0", "1000000000"])
def test_cli_bad_max_connections_exits_2_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    ca = tmp_path / "ca.pem"
    status = main(["webhook", "serve", "--port", "1", "--self-signed", str(ca), "--max-connections", value])
    assert status == 2
    assert "--max-connections" in capsys.readouterr().err
    assert not ca.exists()
