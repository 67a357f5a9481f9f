"""The command dispatcher: errors exit 2 without a traceback; missing extras are named."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

from sim.harness import cli


def import_failing(monkeypatch: pytest.MonkeyPatch, module: str, missing: str) -> None:
    """Make importing ``module`` fail as if ``missing`` were not installed."""
    real_import = importlib.import_module

    def patched(name: str, package: str | None = None) -> ModuleType:
        if name == module:
            raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", patched)


def test_a_command_whose_extra_is_missing_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import_failing(monkeypatch, "sim.harness.cli.webhook", "cryptography")
    assert cli.main(["webhook", "serve", "--port", "9443"]) == 2
    err = capsys.readouterr().err
    assert "'cryptography'" in err and "[webhook]" in err and "Traceback" not in err


def test_other_commands_still_work_when_an_extra_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import_failing(monkeypatch, "sim.harness.cli.lpar", "libvirt")
    toml = tmp_path / "initdata.toml"
    toml.write_text('algorithm = "sha256"\nversion = "0.1.0"\n[data]\n', encoding="utf-8")
    assert cli.main(["initdata", "digest", str(toml)]) == 0
    assert len(capsys.readouterr().out.strip()) == 64


def test_a_bug_in_our_own_module_is_not_mistaken_for_a_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import_failing(monkeypatch, "sim.harness.cli.lpar", "sim.lpar.gone")
    with pytest.raises(ModuleNotFoundError):
        cli.build_parser()


def test_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["frobnicate"])
    assert info.value.code == 2
