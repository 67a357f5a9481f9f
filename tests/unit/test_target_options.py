"""The target options, declared once (sim.harness.targets.options), parsed into TargetOptions."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sim.errors import ConformanceInputError
from sim.harness.targets.base import TargetOptions
from sim.harness.targets.options import add_arguments, target_options


def parse(*argv: str) -> TargetOptions:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(argv)
    return target_options(lambda dest: getattr(args, dest))


def test_fields_of_target_options_are_set_directly_and_the_rest_travel_in_extra(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    options = parse("--libvirt-uri", "test:///default", "--webhook-ca", str(ca), "--cluster", "kind")
    assert options.libvirt_uri == "test:///default"
    assert options.webhook_ca == ca
    assert options.webhook_url is None
    assert dict(options.extra) == {"cluster": "kind"}


def test_a_missing_file_is_named_with_its_flag(tmp_path: Path) -> None:
    with pytest.raises(ConformanceInputError, match=r"--webhook-config .*nope\.yaml: no such file"):
        parse("--webhook-config", str(tmp_path / "nope.yaml"))


def test_choices_bound_the_target_and_the_cluster_kind() -> None:
    for argv in (["--target", "nosuch"], ["--cluster", "minikube"]):
        with pytest.raises(SystemExit):
            parse(*argv)


def test_several_lpars_each_worker_gets_one_in_turn() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--libvirt-uri", "qemu:///system", "--libvirt-uri", "test:///default"])
    chosen = [target_options(lambda dest: getattr(args, dest), index).libvirt_uri for index in range(3)]
    assert chosen == ["qemu:///system", "test:///default", "qemu:///system"]
