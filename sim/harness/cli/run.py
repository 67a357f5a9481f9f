"""``peerpods-conformance run``: the conformance run, as a CI gate and as a certification.

Runs the features through pytest on the chosen target and writes one run's result files,
bound by its run id: ``summary.json`` and ``report.html`` (the suite's), ``junit.xml``
(pytest's, grouped by feature), ``cucumber.json`` (every scenario) and ``SHA256SUMS``.
Exit status: see :data:`EXIT_HELP`.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sim.errors import ConformanceInputError, ReportWriteError, TargetError
from sim.files import sha256_file
from sim.harness.catalogue import feature_scenarios, load_catalogue
from sim.harness.cli import signals
from sim.harness.console import ConsolePlugin
from sim.harness.distributed import ControllerRecorder, lpar_identities, order_testcases, worker_count
from sim.harness.needs import require_target
from sim.harness.pytest_plugin import PresetTarget, lpar_facts
from sim.harness.report.bundle import BUNDLE, CONSOLE_LOG, write_bundle
from sim.harness.report.cucumber import cucumber_report
from sim.harness.report.html import render_report
from sim.harness.report.identity import load_product
from sim.harness.report.junit import group_by_feature
from sim.harness.report.model import Summary
from sim.harness.report.output import PUBLISHED, RESULT_FILES, ReportDir, check_report_dir
from sim.harness.report.results import OUTCOMES, ResultRecorder
from sim.harness.report.selection import check_tags
from sim.harness.report.summary import EXIT_CODES, build_summary
from sim.harness.targets import create_target
from sim.harness.targets.base import Target
from sim.harness.targets.options import TARGET_OPTIONS, add_arguments, repeated, target_options
from sim.lpar import host
from sim.lpar.ownership import RUN_ID_ENV
from sim.paths import STEPS_DIR

EXIT_BAD_INPUT, EXIT_BROKEN = 2, 4
#: pytest options that run nothing: refused by ``run`` (``peerpods-conformance list`` lists).
COLLECT_ONLY = frozenset({"--collect-only", "--co", "--setup-only", "--setup-plan"})
EXIT_HELP = """exit status:
  0    CONFORMANT: the whole catalogue ran and every applicable MUST scenario passed
  1    NOT CONFORMANT: a MUST requirement failed
  2    bad input, before anything ran: an option, an unknown tag or requirement id in --tags,
       an unusable --report-dir, another run holding the same --report-dir, a bad --product
       file, --collect-only (use `peerpods-conformance list`); or something to install or
       start: a missing extra (named with its pip install), a target that cannot be reached
       (libvirtd not running), a missing build with --no-build (cluster prepare)
  3    PARTIAL: a selection (--tags, -k, -m, -x, ...) ran; every applicable MUST scenario in it
       passed, but a selection is not a certificate
  4    the run broke (a collection error, a pytest internal error, result files that could
       not be written: a full disk); the previous reports are left as they were
  5    NOTHING VERIFIED: no applicable MUST scenario ran
  130  interrupted (SIGINT, Ctrl-C); the previous reports are left as they were
  143  terminated (SIGTERM); the previous reports are left as they were
SHOULD requirements never change the exit status: they are reported as advisories."""


RUN_EXAMPLES = """examples:
  peerpods-conformance run
      the whole catalogue on the reference target; result files in ./reports
  peerpods-conformance run --target webhook --webhook-url https://127.0.0.1:9443/mutate \\
      --webhook-ca ca.pem --report-dir /tmp/webhook-reports
      certify a running webhook
  peerpods-conformance run --target lpar --tags "VM-001 or GI-001" -x
      two requirements on the emulated LPAR, stop at the first failure (PARTIAL)
  peerpods-conformance run --target cluster --no-build
      the cluster target, only if `peerpods-conformance cluster prepare` has built it
  peerpods-conformance list --target lpar
      what a run on the lpar target can answer, without running"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        usage="%(prog)s [--target NAME] [--report-dir DIR] [--tags EXPR] [target options] [PYTEST-ARGS ...]",
        help="run the conformance features against a target and write the reports",
        description="Run the conformance features against a target and write the result files.\n"
        "Arguments this command does not know are passed to pytest (PYTEST-ARGS: -k EXPR, -x, -v, ...).",
        epilog=RUN_EXAMPLES + "\n\n" + EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # an abbreviation (--co) is pytest's option, not one of ours (--context)
    )
    add_arguments(parser)
    parser.add_argument(
        "--report-dir", default="reports", help="where to write the result files (default: reports)"
    )
    parser.add_argument(
        "--tags",
        default=None,
        help='run only the scenarios with these requirement or capability tags, e.g. "WH-001 or NL-002" '
        "(a selection is PARTIAL, never a certificate; default: the whole catalogue)",
    )
    parser.add_argument(
        "--product",
        metavar="FILE",
        type=Path,
        default=None,
        help="the product under test, for the certificate: a YAML file with vendor, product, version, "
        "contact (optional: website_url, documentation_url, description), as CNCF's PRODUCT.yaml",
    )
    parser.add_argument(
        "--workers",
        type=worker_count,
        default=None,
        metavar="N",
        help="spread the scenarios over N pytest-xdist workers (auto: one per core); the result files "
        "are those of a serial run, each scenario naming the worker and host it ran on",
    )
    parser.set_defaults(func=run, accepts_extra=True)


def build_target(args: argparse.Namespace) -> Target:
    """Build the run's target once, up front: bad options fail here, before pytest, with exit 2.

    So does a target that cannot be reached or started (libvirtd not running, a part of the host
    missing): nothing ran, so it is no verdict; the message says what to start or install.
    """
    try:
        return create_target(args.target, target_options(lambda dest: getattr(args, dest, None)))
    except TargetError as exc:
        raise ConformanceInputError(
            f"--target {args.target} cannot be used here; nothing ran: {exc}"
        ) from exc


def pytest_arguments(args: argparse.Namespace, report_dir: Path) -> list[str]:
    """The pytest command line for this run (``report_dir``: where junit.xml goes).

    The target options are not in it: the target travels in as a plugin (:class:`PresetTarget`).
    """
    argv = [
        str(STEPS_DIR),
        f"--rootdir={STEPS_DIR.parent}",
        "-p",
        "sim.harness.pytest_plugin",  # the wiring; a checkout's conftest.py loads the same module (once)
        "-p",
        "no:cacheprovider",
        "-p",
        "no:hypothesispytest",  # the features use no hypothesis; its plugin costs ~1 s of imports
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",  # this process imported pytest-bdd before pytest.main
        f"--junitxml={report_dir / 'junit.xml'}",
        "-o",
        "junit_family=xunit2",
        "-o",
        "junit_suite_name=peerpods-conformance",
    ]
    if args.tags:
        argv += ["-m", args.tags]
    if distributed(args):
        argv += worker_arguments(args)
    return argv + list(args.extra)


def distributed(args: argparse.Namespace) -> bool:
    """Scenarios go to pytest-xdist workers: ``--workers N``, or execnet gateways given after the
    options (``--tx ssh=HOST//python=...``, with ``--rsyncdir``), which run as workers too."""
    extra = list(getattr(args, "extra", []))
    return bool(getattr(args, "workers", None)) or any(a == "--tx" or a.startswith("--tx=") for a in extra)


def worker_arguments(args: argparse.Namespace) -> list[str]:
    """pytest-xdist's workers, and what they need to build the target themselves (its options)."""
    argv = ["-n", str(args.workers)] if getattr(args, "workers", None) else []
    if not argv and not any(a in ("-d", "--dist") or a.startswith("--dist=") for a in args.extra):
        argv = ["--dist", "load"]  # --tx alone would run nothing remotely
    argv += ["--peerpods-run-id", os.environ.get(RUN_ID_ENV, "")]
    for spec in TARGET_OPTIONS:
        value = getattr(args, spec.dest, None)
        if spec.switch:  # a flag without a value: given or not
            argv += [spec.flag] if value else []
            continue
        for one in value if isinstance(value, list) else [] if value is None else [value]:
            argv += [spec.flag, str(one)]
    return argv


def dist_mode(extra: list[str]) -> str | None:
    """The ``--dist`` mode given among pytest's arguments (the last one), or None."""
    mode = None
    for index, arg in enumerate(extra):
        if arg == "--dist" and index + 1 < len(extra):
            mode = extra[index + 1]
        elif arg.startswith("--dist="):
            mode = arg.removeprefix("--dist=")
    return mode


def check_lpars(args: argparse.Namespace) -> list[str]:
    """Every ``--libvirt-uri`` must answer before anything runs (exit 2 naming the one that does not);
    several LPARs need a worker each (``--workers`` defaults to their number)."""
    uris = repeated(lambda dest: getattr(args, dest, None), "libvirt-uri")
    if len(uris) > 1:
        if len(set(uris)) != len(uris):
            raise ConformanceInputError(f"--libvirt-uri: the same LPAR given twice ({', '.join(uris)})")
        mode = dist_mode(list(getattr(args, "extra", [])))
        if mode not in (None, "load"):
            raise ConformanceInputError(
                f"--dist {mode} with several LPARs: only xdist's load scheduling keeps each "
                "@each-lpar scenario to its own LPAR's workers (leave --dist out)"
            )
        if args.workers is None:
            args.workers = len(uris)
        elif args.workers < len(uris):
            raise ConformanceInputError(
                f"--workers {args.workers} for {len(uris)} LPARs (--libvirt-uri given {len(uris)} times): "
                "each LPAR needs a worker of its own"
            )
    if args.target in ("lpar", "cluster", "adaptor"):
        for uri in uris:
            try:
                host.connect(uri).close()
            except TargetError as exc:
                raise ConformanceInputError(f"--libvirt-uri {uri}: unreachable LPAR: {exc}") from None
    return uris


def _exit_for_pytest(status: int) -> int | None:
    """The run's exit status when pytest itself did not finish a run; None when it did.

    pytest says "interrupted" for Ctrl-C and for a collection error alike; Ctrl-C is handled
    before this (130), so here it is a collection error (4).
    """
    if status in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED):
        return None
    if status == pytest.ExitCode.USAGE_ERROR:
        return EXIT_BAD_INPUT
    return EXIT_BROKEN


def run(args: argparse.Namespace) -> int:
    """Check the input, run the features into a staging directory, then swap the results in."""
    refused = sorted(set(args.extra) & COLLECT_ONLY)
    if refused:
        raise ConformanceInputError(
            f"{refused[0]}: a run that collects only would replace the reports with a NOTHING VERIFIED "
            "set; to list the scenarios, use `peerpods-conformance list` (it writes nothing)"
        )
    require_target(args.target, args.libvirt_uri)
    product = load_product(args.product) if args.product is not None else None
    catalogue = load_catalogue()
    if args.tags is not None:
        check_tags(args.tags, catalogue, feature_scenarios())
    lpars = check_lpars(args)
    report_path = check_report_dir(args.report_dir)
    run_id = str(uuid.uuid4())
    os.environ[RUN_ID_ENV] = run_id  # this run's pod VMs carry it (sim.lpar.ownership), its workers too
    output = ReportDir(report_path, run_id).open()
    try:
        target = build_target(args)
        try:
            return _run_into(args, output, catalogue, target, product, lpars)
        finally:
            target.close()
    except KeyboardInterrupt:
        signals.note(f"{output.path}/ keeps the previous run's reports")
        raise
    except Exception as exc:
        if signals.received() is not None:  # what failed while stopping is said; the status stays 130/143
            signals.note(f"while stopping: {exc}")
            signals.note(f"{output.path}/ keeps the previous run's reports")
            raise KeyboardInterrupt from exc
        if not isinstance(exc, OSError) or not _is_write_failure(exc, output.path):
            raise
        raise ReportWriteError(
            f"cannot write the result files into {output.path}/: {exc.strerror or exc}; "
            "the previous run's reports are left as they were"
        ) from exc
    finally:
        output.close()


#: What a write that ran out of room (or was refused by the file system) fails with.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EIO})


def _is_write_failure(exc: OSError, report_dir: Path) -> bool:
    """An OSError of writing the result files, as against one of the target's."""
    if exc.errno in WRITE_ERRNOS:
        return True
    return exc.filename is not None and Path(str(exc.filename)).is_relative_to(report_dir)


def _run_into(
    args: argparse.Namespace,
    output: ReportDir,
    catalogue: Any,
    target: Target,
    product: dict[str, str] | None,
    lpars: list[str],
) -> int:
    staging = output.staging
    parallel = distributed(args)
    recorder = ControllerRecorder() if parallel else ResultRecorder()
    identity = target.identity()
    if len(lpars) > 1:  # the controller's target is the first LPAR's: its own facts come from the workers
        identity = {k: v for k, v in identity.items() if k not in target.per_lpar_facts}
        identity["libvirt URI"] = ", ".join(lpars)
        identity["LPARs"] = (
            f"{len(lpars)}, one per worker (each scenario names its own: ran_on.lpar; "
            "each LPAR's facts: lpars)"
        )
    started = datetime.now(UTC)
    with (staging / CONSOLE_LOG).open("w", encoding="utf-8") as log:
        console = ConsolePlugin(recorder, args.target, log)
        plugins: list[object] = [recorder, PresetTarget(args.target, target), console]
        status = pytest.main(pytest_arguments(args, staging), plugins=plugins)
    finished = datetime.now(UTC)
    if signals.received() is not None or recorder.keyboard_interrupt:
        raise KeyboardInterrupt  # the run stopped; main says "interrupted" and exits 130/143
    broken = _exit_for_pytest(status)
    each_lpar = None
    if isinstance(recorder, ControllerRecorder):
        recorder.finish()
        if len(lpars) > 1:
            each_lpar = lpar_identities(lpars, recorder.lpar_facts)
        elif lpars and recorder.lpar_facts:  # one LPAR: its workers' facts, as the run ended
            identity = with_late_facts(identity, lpar_identities(lpars, recorder.lpar_facts)[lpars[0]])
        for worker, lines in sorted(recorder.notes.items()):
            for line in lines:
                print(f"peerpods-conformance: [{worker}] {line}", file=sys.stderr)
        if recorder.died:
            print(
                "peerpods-conformance: "
                + "; ".join(f"worker {w} died: {why}" for w, why in sorted(recorder.died.items()))
                + " (its scenarios fail)",
                file=sys.stderr,
            )
            if broken == EXIT_BROKEN and recorder.selected:  # xdist gave up on its workers: judge what ran
                broken = None
    else:
        identity = with_late_facts(identity, lpar_facts(target))
    if broken is not None:
        print(
            f"peerpods-conformance: the run did not finish (pytest exit {int(status)}); "
            f"{output.path}/ keeps the previous run's reports",
            file=sys.stderr,
        )
        return broken
    cucumber = staging / "cucumber.json"
    cucumber.write_text(
        json.dumps(cucumber_report(recorder.features, recorder.results.values(), output.run_id), indent=2)
        + "\n",
        encoding="utf-8",
    )
    artifacts = {name: staging / name for name in ("junit.xml", "cucumber.json")}
    if not artifacts["junit.xml"].exists():
        artifacts.pop("junit.xml")
    summary = build_summary(
        catalogue=catalogue,
        results=recorder.results.values(),
        target={"name": args.target, **identity},
        artifacts={},
        started=started,
        finished=finished,
        selection=list(args.extra) + (["-m", args.tags] if args.tags else []),
        run_id=output.run_id,
        not_run=recorder.not_run(),
        narrowed=bool(args.tags) or bool(recorder.deselected),
        product=product,
        lpars=each_lpar,
    )
    if "junit.xml" in artifacts:
        if parallel:
            order_testcases(artifacts["junit.xml"], list(recorder.results))
        group_by_feature(artifacts["junit.xml"], recorder.results, output.run_id, summary["verdict"])
    summary["artifacts"] = {
        name: {"file": path.name, "sha256": sha256_file(path)} for name, path in artifacts.items()
    }
    summary_path = staging / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (staging / "report.html").write_text(render_report(summary, sha256_file(summary_path)), encoding="utf-8")
    sums = [f"{sha256_file(staging / n)}  {n}" for n in RESULT_FILES[:-1] if (staging / n).exists()]
    (staging / "SHA256SUMS").write_text("\n".join(sums) + "\n", encoding="utf-8")
    closing = console_summary(summary, args.target, output.path)
    with (staging / CONSOLE_LOG).open("a", encoding="utf-8") as log:
        log.write(closing + "\n")
    bundled = {name: staging / name for name in (*RESULT_FILES, CONSOLE_LOG)}
    write_bundle(staging / BUNDLE, output.run_id, bundled, target.log_files(), finished.timestamp())
    output.publish()
    print(closing)
    return EXIT_CODES[summary["verdict"]]


def with_late_facts(identity: dict[str, str], late: Mapping[str, str]) -> dict[str, str]:
    """``identity`` with the facts a target knows only once it ran (the boot concurrency its LPAR
    chose at the first boot), as ``late`` gives them; a fact it gave at the start stays."""
    if "facts" in late:  # "not reported": no worker on the LPAR finished
        return identity
    return {**identity, **{key: value for key, value in late.items() if key not in identity}}


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(word, 0)} {word}" for word in OUTCOMES)


def console_summary(summary: Summary, target: str, report_dir: Path) -> str:
    """The closing lines: the verdict, its scope, MUSTs, advisories, and where the reports are."""
    counts = summary["counts"]
    lines = [
        f"peerpods-conformance: {summary['headline']}",
        f"  target {target}, run {summary['run_id']}; scenarios: {_counts(counts['scenarios'])}",
        f"  MUST requirements: {_counts(counts['must'])}",
        f"  advisories (SHOULD requirements): {_counts(counts['should'])}",
    ]
    failed = [r["id"] for r in summary["requirements"] if r["level"] == "MUST" and r["verdict"] == "failed"]
    if failed:
        lines.append(f"  failed MUST requirements: {', '.join(failed)}")
    if summary["advisories"]:
        lines.append(f"  advisories: {', '.join(a['id'] for a in summary['advisories'])} (SHOULD, failed)")
    not_run = summary["scope"]["requirements_not_run"]
    if not summary["scope"]["full"]:
        lines.append(
            f"  not run: {len(summary['scope']['scenarios_not_run'])} scenario(s), "
            f"{len(not_run)} requirement(s){': ' + ', '.join(not_run) if not_run else ''}"
        )
    lines.append(f"  reports in {report_dir}/: {', '.join(PUBLISHED)}")
    return "\n".join(lines)
