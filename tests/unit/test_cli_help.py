"""Help for a new user: examples and defaults, plain text, packaged fixtures by name, builds that
say what they do before they start, and --no-build that never builds."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.harness import cli
from sim.harness.targets.cluster import build


def parsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from parsers(child)


def texts(parser: argparse.ArgumentParser) -> Iterator[str]:
    yield parser.description or ""
    yield parser.epilog or ""
    for action in parser._actions:
        yield action.help or ""
        if isinstance(action, argparse._SubParsersAction):
            yield from (choice.help or "" for choice in action._choices_actions)


def test_no_restructuredtext_in_any_help() -> None:
    for prog, parser in parsers(cli.build_parser()):
        for text in texts(parser):
            assert "``" not in text and ":mod:" not in text, f"{prog}: {text[:80]}"


@pytest.mark.parametrize("command", ["lpar", "cluster", "adaptor", "run", "list", "mutate", "initdata"])
def test_every_group_says_what_it_is(command: str) -> None:
    parser = dict(parsers(cli.build_parser()))[f"peerpods-conformance {command}"]
    assert parser.description and len(parser.description) > 40


def test_run_help_has_examples_defaults_and_the_pytest_pass_through(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "PYTEST-ARGS" in out.splitlines()[0]
    assert "examples:" in out and "peerpods-conformance run --target lpar" in out
    assert "(default: reference)" in out and "(default: reports)" in out


def test_a_packaged_lpar_description_is_usable_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lpar", "check", "emperor4-se"]) == 0
    assert capsys.readouterr().out.startswith("PASS")
    assert cli.main(["lpar", "check", "z15-se"]) == 1


def test_an_unknown_name_lists_the_packaged_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lpar", "check", "emperor9"]) == 2
    err = capsys.readouterr().err
    assert "'emperor9'" in err and "emperor4-se" in err


def test_a_build_announces_what_how_long_and_where_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_go = tmp_path / "go"
    fake_go.write_text("#!/bin/sh\nexit 3\n")
    fake_go.chmod(0o755)
    monkeypatch.setenv("PEERPODS_GO", str(fake_go))
    lines: list[str] = []
    with pytest.raises(build.BuildError):
        build.prepare(tmp_path / "cache", log=lines.append)
    first = lines[0]
    assert "10-25 minutes" in first and "kube-apiserver" in first and str(tmp_path / "cache") in first
    assert lines[1].startswith("building etcd")


def test_no_build_refuses_to_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEERPODS_GO", "/nonexistent/go")
    with pytest.raises(build.NotBuilt, match="cluster prepare"):
        build.prepare(tmp_path / "cache", log=lambda line: None, build=False)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "argv", [["cluster", "up", "--no-build"], ["run", "--target", "cluster", "--no-build"]]
)
def test_no_build_commands_exit_2_naming_cluster_prepare(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PEERPODS_K8S_CACHE", str(tmp_path / "k8s"))
    report_dir = tmp_path / "reports"
    extra = ["--report-dir", str(report_dir)] if argv[0] == "run" else []
    assert cli.main([*argv, *extra]) == 2
    assert "peerpods-conformance cluster prepare" in capsys.readouterr().err
    assert not report_dir.exists() and not (tmp_path / "k8s").exists()
    assert os.environ["PEERPODS_K8S_CACHE"] == str(tmp_path / "k8s")


def test_lpar_prepare_announces_its_build_before_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sim.lpar import builder

    said_before: list[str] = []

    def fake_prepare(cache: Path, **kwargs: object) -> object:
        said_before.append(capsys.readouterr().err)
        raise builder.BuildError("stop here")

    monkeypatch.setattr(builder, "prepare", fake_prepare)
    assert cli.main(["lpar", "prepare", "--cache", str(tmp_path / "cache")]) == 2
    (announcement,) = said_before
    assert "10-25 minutes" in announcement and str(tmp_path / "cache") in announcement
    assert "kernel" in announcement and "initramfs" in announcement
