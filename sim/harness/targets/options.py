"""The target options, declared once: the CLI's parser and pytest's options are both made from here.

``peerpods-conformance run`` parses them with argparse and hands the parsed :class:`TargetOptions`
(and the target it built from them) to pytest; ``pytest steps --target ...`` parses the same
table through ``pytest_addoption``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sim.errors import ConformanceInputError
from sim.files import non_regular_kind
from sim.harness.targets import TARGETS
from sim.harness.targets.base import TargetOptions

__all__ = ["TARGET_OPTIONS", "OptionSpec", "add_arguments", "add_pytest_options", "target_options"]

CLUSTER_KINDS = ("local", "kind", "k3s")


@dataclass(frozen=True)
class OptionSpec:
    """One command-line option: ``--name``; ``type`` converts its text; ``choices`` bounds it."""

    name: str
    help: str
    type: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    default: str | None = None
    #: May be given more than once (a list); a target gets one of the values (see :func:`target_options`).
    repeat: bool = False
    #: An option without a value (``--no-build``): present or not.
    switch: bool = False

    @property
    def flag(self) -> str:
        return f"--{self.name}"

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    def keywords(self) -> dict[str, Any]:
        if self.switch:
            return {"action": "store_true", "default": False, "help": self.help}
        keywords: dict[str, Any] = {"default": self.default, "help": self.help}
        if self.choices is not None:
            keywords["choices"] = self.choices
        if self.type is not str:
            keywords["type"] = self.type
        if self.repeat:
            keywords["action"] = "append"
        return keywords


#: ``--target`` and every option a target reads (``TargetOptions`` fields, the rest in its ``extra``).
TARGET_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "target",
        "system under test (default: reference)",
        choices=tuple(sorted(TARGETS)),
        default="reference",
    ),
    OptionSpec(
        "libvirt-uri",
        "libvirt URI of the LPAR (lpar, cluster, adaptor targets); give it once per LPAR to spread "
        "`run --workers` over several (each worker bound to one)",
        repeat=True,
    ),
    OptionSpec(
        "boot-concurrency",
        "lpar target: pod VMs booting at once on each LPAR: a number, or 'measure' (the default: at the "
        "first boot, one probe pod VM alone, then one per core of the cores the workers on the LPAR "
        "share; kept only if that is faster)",
    ),
    OptionSpec("webhook-url", "AdmissionReview endpoint for the webhook target"),
    OptionSpec("webhook-ca", "CA bundle (PEM) that signed the webhook's certificate", type=Path),
    OptionSpec("webhook-config", "MutatingWebhookConfiguration YAML the webhook target applies", type=Path),
    OptionSpec("profile", "profile of --webhook-config (caa-chart, openshift); default detected"),
    OptionSpec("cluster", "cluster target: local, kind or k3s", choices=CLUSTER_KINDS),
    OptionSpec("kubeconfig", "cluster target: run on this kubeconfig's cluster"),
    OptionSpec("context", "cluster target: the kubeconfig context to use"),
    OptionSpec(
        "adaptor-binary",
        "adaptor target: a cloud-api-adaptor build to certify (default: the suite's reference adaptor); "
        "cluster target: run each node's adaptor as this process in the run's own LPAR, where it patches "
        "its Node (PATH, or 'reference' for the suite's reference adaptor as a process)",
    ),
    OptionSpec(
        "lpar-host",
        "adaptor target (and cluster with --adaptor-binary): how the run's own LPAR presents itself to "
        "the adaptor: ibmz (default: an IBM Z "
        "KVM host, s390x pod VMs under TCG) or native (this machine: x86_64 pod VMs under KVM)",
        choices=("ibmz", "native"),
    ),
    OptionSpec(
        "no-build",
        "never build what a target needs (the cluster target's control plane): stop with exit 2 "
        "naming the command that prepares it",
        switch=True,
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the target options on an argparse parser (the CLI)."""
    for spec in TARGET_OPTIONS:
        parser.add_argument(spec.flag, **spec.keywords())


def add_pytest_options(group: Any) -> None:
    """Declare the target options on a pytest option group (``pytest steps --target ...``)."""
    for spec in TARGET_OPTIONS:
        group.addoption(spec.flag, **spec.keywords())


def target_options(value: Callable[[str], Any], index: int = 0) -> TargetOptions:
    """The parsed options as :class:`TargetOptions`; ``value(dest)`` reads one parsed option.

    Of a repeated option (several LPARs) the target gets value ``index`` (modulo their number):
    a worker of a parallel run passes its own number. A named file that does not exist fails
    here, naming its flag.
    """
    named = {f.name for f in fields(TargetOptions)} - {"extra"}
    direct: dict[str, Any] = {}
    extra: dict[str, str] = {}
    for spec in TARGET_OPTIONS[1:]:
        parsed = value(spec.dest)
        if isinstance(parsed, list):
            parsed = parsed[index % len(parsed)] if parsed else None
        if parsed is None or parsed is False:
            continue
        if spec.switch:
            parsed = "1"
        if spec.type is Path and (kind := non_regular_kind(parsed)) is not None:
            raise ConformanceInputError(f"{spec.flag} {parsed}: is {kind}, not a regular file")
        if spec.type is Path and not Path(parsed).is_file():
            raise ConformanceInputError(f"{spec.flag} {parsed}: no such file")
        if spec.dest in named:
            direct[spec.dest] = parsed
        else:
            extra[spec.dest] = parsed
    return TargetOptions(**direct, extra=extra)


def repeated(value: Callable[[str], Any], spec_name: str) -> list[str]:
    """Every value given for a repeatable option (none: an empty list)."""
    parsed = value(spec_name.replace("-", "_"))
    if parsed is None:
        return []
    return [str(v) for v in parsed] if isinstance(parsed, list) else [str(parsed)]
