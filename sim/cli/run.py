"""``peerpods-conformance run``: the conformance run, as a CI gate and as a certification.

Runs the features through pytest on the chosen target, then writes, beside pytest's
``junit.xml`` and pytest-bdd's ``cucumber.json``, the suite's own ``summary.json`` and
``report.html``. Exit status: 0 only when every applicable scenario passed; 1 when one
failed; 5 when the selection ran no applicable scenario; 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sim.catalogue import PROJECT_ROOT, load_catalogue
from sim.errors import ConformanceInputError
from sim.files import sha256_file
from sim.report.html import render_report
from sim.report.results import NOT_APPLICABLE, PASSED, ResultRecorder
from sim.report.summary import build_summary
from sim.targets import TARGETS, create_target
from sim.targets.base import TargetOptions

STEPS_DIR = PROJECT_ROOT / "steps"
CLUSTER_KINDS = ("local", "kind", "k3s")
CLUSTER_OPTIONS = ("cluster", "kubeconfig", "context")
EXIT_NO_SCENARIO = 5


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the conformance features against a target and write the reports",
        description="Run the conformance features against a target. Arguments after the options are "
        "passed to pytest (for example -k EXPR, -x, -q).",
    )
    parser.add_argument("--target", default="reference", choices=sorted(TARGETS), help="system under test")
    parser.add_argument("--report-dir", type=Path, default=Path("reports"), help="where to write the reports")
    parser.add_argument(
        "--tags", default=None, help='requirement or capability tags, e.g. "WH-001 or NL-002"'
    )
    parser.add_argument("--libvirt-uri", default=None, help="libvirt URI for the lpar target")
    parser.add_argument("--webhook-url", default=None, help="AdmissionReview endpoint for the webhook target")
    parser.add_argument(
        "--webhook-ca", type=Path, default=None, help="CA bundle of the webhook's certificate"
    )
    parser.add_argument("--webhook-config", type=Path, default=None, help="MutatingWebhookConfiguration YAML")
    parser.add_argument(
        "--profile", default=None, help="profile of --webhook-config (caa-chart, openshift); default detected"
    )
    parser.add_argument(
        "--cluster", default=None, choices=CLUSTER_KINDS, help="cluster target: local, kind or k3s"
    )
    parser.add_argument("--kubeconfig", default=None, help="cluster target: run on this kubeconfig's cluster")
    parser.add_argument("--context", default=None, help="cluster target: the kubeconfig context to use")
    parser.set_defaults(func=run, accepts_extra=True)


def _target_identity(args: argparse.Namespace) -> dict[str, str]:
    """Build the target once up front: bad options fail here, before pytest, with exit 2."""
    target = create_target(args.target, _options(args))
    try:
        return target.identity()
    finally:
        target.close()


def _options(args: argparse.Namespace) -> TargetOptions:
    for name in ("webhook_ca", "webhook_config"):
        path = getattr(args, name)
        if path is not None and not path.is_file():
            raise ConformanceInputError(f"--{name.replace('_', '-')} {path}: no such file")
    return TargetOptions(
        libvirt_uri=args.libvirt_uri,
        webhook_url=args.webhook_url,
        webhook_ca=args.webhook_ca,
        webhook_config=args.webhook_config,
        extra={k: getattr(args, k) for k in ("profile", *CLUSTER_OPTIONS) if getattr(args, k, None)},
    )


def pytest_arguments(args: argparse.Namespace, report_dir: Path) -> list[str]:
    """The pytest command line for this run."""
    argv = [
        str(STEPS_DIR),
        f"--rootdir={PROJECT_ROOT}",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:hypothesispytest",  # the features use no hypothesis; its plugin costs ~1 s of imports
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",  # this process imported pytest-bdd before pytest.main
        f"--target={args.target}",
        f"--junitxml={report_dir / 'junit.xml'}",
        f"--cucumberjson={report_dir / 'cucumber.json'}",
        "-o",
        "junit_family=xunit2",
        "-o",
        "junit_suite_name=peerpods-conformance",
    ]
    for option in ("libvirt_uri", "webhook_url", "webhook_ca", "webhook_config", "profile", *CLUSTER_OPTIONS):
        value = getattr(args, option, None)
        if value is not None:
            argv.append(f"--{option.replace('_', '-')}={value}")
    if args.tags:
        argv += ["-m", args.tags]
    return argv + list(args.extra)


def run(args: argparse.Namespace) -> int:
    """Run the features, then write summary.json and report.html."""
    catalogue = load_catalogue()
    identity = _target_identity(args)
    report_dir: Path = args.report_dir
    report_dir.mkdir(parents=True, exist_ok=True)
    recorder = ResultRecorder()
    started = datetime.now(UTC)
    status = pytest.main(pytest_arguments(args, report_dir), plugins=[recorder])
    finished = datetime.now(UTC)
    if status not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED):
        return int(status)
    artifacts = {
        name: report_dir / name for name in ("junit.xml", "cucumber.json") if (report_dir / name).exists()
    }
    summary = build_summary(
        catalogue=catalogue,
        results=recorder.results.values(),
        target={"name": args.target, **identity},
        artifacts=artifacts,
        started=started,
        finished=finished,
        selection=list(args.extra) + (["-m", args.tags] if args.tags else []),
    )
    summary_path = report_dir / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    report_path = report_dir / "report.html"
    report_path.write_text(render_report(summary, sha256_file(summary_path)), encoding="utf-8")
    counts = summary["counts"]["scenarios"]
    print(
        f"peerpods-conformance: {summary['verdict'].upper()} on target {args.target}: "
        + ", ".join(f"{n} {k}" for k, n in counts.items())
        + f"; reports in {report_dir}/ (report.html, summary.json, junit.xml, cucumber.json)"
    )
    if not any(r.outcome != NOT_APPLICABLE for r in recorder.results.values()):
        print("peerpods-conformance: no applicable scenario ran: nothing was verified", file=sys.stderr)
        return EXIT_NO_SCENARIO
    return 0 if summary["verdict"] == PASSED else 1
