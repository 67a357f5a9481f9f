"""The LPAR's libvirt fault layer: preloaded into a process, it fails the n-th call of one
operation there with a libvirt error saying "injected", passes every other call on, and
sits in front of the IBM Z host layer without disturbing it.

Each probe is a subprocess with LD_PRELOAD on libvirt's test driver (the layer is meant for
one process only, the adaptor's). Needs gcc and libvirt's headers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("libvirt")

from sim.errors import ConformanceInputError
from sim.lpar import isolated, libvirt_faults, preload
from sim.lpar.ibmz_host import ibmz_host_library
from sim.lpar.libvirt_faults import STEPS, VARIABLE, fault_environment, libvirt_faults_library

pytestmark = pytest.mark.skipif(
    isolated._which("gcc") is None or not preload.HEADER.is_file(), reason="no gcc or no libvirt headers"
)

#: A pod VM's creation in CAA's order, on the test driver: each call's outcome, as JSON.
PROBE = """
import json, libvirt
libvirt.registerErrorHandler(lambda context, error: None, None)
connection = libvirt.open("test:///default")
pool = connection.storagePoolLookupByName("default-pool")
outcome = {"model": connection.getInfo()[0]}
def attempt(name, call):
    try:
        call()
        outcome[name] = "ok"
    except libvirt.libvirtError as exc:
        outcome[name] = [exc.get_error_code(), exc.get_error_message()]
volume = "<volume><name>{}</name><capacity unit='MiB'>1</capacity></volume>"
attempt("root-volume", lambda: pool.createXML(volume.format("pod-root.qcow2"), 0))
attempt("cidata-volume", lambda: pool.createXML(volume.format("pod-cloudinit.iso"), 0))
attempt("another volume", lambda: pool.createXML(volume.format("third"), 0))
domain = "<domain type='test'><name>pod</name><memory>1024</memory><os><type>hvm</type></os></domain>"
attempt("define", lambda: connection.defineXML(domain))
attempt("start", lambda: connection.lookupByName("pod").create())
print(json.dumps(outcome))
"""
CALLS = ("root-volume", "cidata-volume", "another volume", "define", "start")


def probe(env: dict[str, str]) -> tuple[dict[str, Any], str]:
    base = {key: value for key, value in os.environ.items() if key not in ("LD_PRELOAD", VARIABLE)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    outcome: dict[str, Any] = json.loads(done.stdout)
    return outcome, done.stderr


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def layer(cache: Path) -> Path:
    return libvirt_faults_library(cache)


@pytest.mark.parametrize("step", sorted(STEPS))
def test_the_chosen_step_alone_fails_and_says_injected(layer: Path, step: str) -> None:
    outcome, _ = probe(fault_environment(step, layer, {}))
    operation, call = STEPS[step]
    assert outcome[step] == [
        9,  # VIR_ERR_OPERATION_FAILED
        f"injected libvirt failure: {operation} call {call} refused by the emulated LPAR",
    ]
    after = ("start",) if step == "define" else ()  # no domain defined, none to start
    others = {name: outcome[name] for name in CALLS if name not in (step, *after)}
    assert set(others.values()) == {"ok"}, outcome


def test_without_a_request_nothing_fails(layer: Path) -> None:
    outcome, said = probe(preload.preload_environment(layer, {}))
    assert {outcome[name] for name in CALLS} == {"ok"} and said == ""


@pytest.mark.parametrize("value", ["volume-create", "volume-create:0", "volume-create:x", "unplug:1"])
def test_an_unreadable_request_is_named_and_ignored(layer: Path, value: str) -> None:
    outcome, said = probe({**preload.preload_environment(layer, {}), VARIABLE: value})
    assert {outcome[name] for name in CALLS} == {"ok"}
    assert f"ignoring {VARIABLE}={value}" in said


def test_in_front_of_the_ibmz_host_layer_both_work(layer: Path, cache: Path) -> None:
    host = preload.preload_environment(ibmz_host_library(cache), {})
    env = fault_environment("cidata-volume", layer, host)
    assert env["LD_PRELOAD"] == f"{layer}:{host['LD_PRELOAD']}"
    outcome, _ = probe(env)
    assert outcome["model"] == "s390x"  # the IBM Z host layer still answers
    assert "injected" in outcome["cidata-volume"][1] and outcome["root-volume"] == "ok"


def test_an_unknown_step_is_refused_by_name(layer: Path) -> None:
    with pytest.raises(ConformanceInputError, match=r"unknown creation step 'unplug' \(known: root-volume"):
        fault_environment("unplug", layer, {})


def test_the_library_is_cached_by_the_sources_digest(layer: Path, cache: Path) -> None:
    assert layer.parent.name == f"libvirt-faults-{preload.source_digest(libvirt_faults.SOURCE)[:16]}"
    built = layer.stat().st_mtime_ns
    assert libvirt_faults_library(cache) == layer
    assert layer.stat().st_mtime_ns == built
