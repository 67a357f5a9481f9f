"""Fuzzing the CLI: random manifests and initdata into ``mutate`` and ``initdata``.

Whatever the input, the command must answer 0 or 2 with a message, never a traceback, and
within a bounded time per input (hypothesis' deadline). The example count is bounded for
CI; raise ``PEERPODS_FUZZ_EXAMPLES`` for a longer local run.
"""

from __future__ import annotations

import base64
import gzip
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.harness.cli import main
from sim.harness.difftest import pods

EXAMPLES = int(os.environ.get("PEERPODS_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=2000,  # ms per input
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.sampled_from(["1e1000000", "1e99999999999", "9" * 200, "-0.1n", "8Ei", "  1  ", ".", "e3"]),
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)
YAML_NOISE = st.text(alphabet="{}[]:,-&*!|>'\"#%@` \n\tabcPodkindv1", max_size=300)


def mutated_pods() -> st.SearchStrategy[Any]:
    """Generated pods with random subtrees grafted in, and random documents."""

    def graft(pod: dict[str, Any], where: str, value: Any) -> dict[str, Any]:
        target: dict[str, Any] = pod
        if where == "container" and pod.get("spec", {}).get("containers"):
            target = pod["spec"]["containers"][0]
        elif where == "spec":
            target = pod.setdefault("spec", {})
        target["resources" if where == "container" else "x"] = value
        return pod

    grafted = st.builds(graft, pods(), st.sampled_from(["top", "spec", "container"]), JSONISH)
    return st.one_of(grafted, JSONISH)


def run(argv: list[str], payload: bytes, stdin: bool = False) -> int:
    """Run the CLI on ``payload`` (a file, or stdin); a traceback fails the test."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as directory:
        path = Path(directory) / "input"
        path.write_bytes(payload)
        args = [*argv, "-" if stdin else str(path)]
        saved = sys.stdin, sys.stdout
        sys.stdin = io.TextIOWrapper(io.BytesIO(payload))
        sys.stdout = io.TextIOWrapper(io.BytesIO())
        try:
            status = main(args)
        finally:
            sys.stdin, sys.stdout = saved
    assert status in (0, 2), status
    return status


@FUZZ
@given(document=mutated_pods())
def test_mutate_never_tracebacks_on_documents(document: Any) -> None:
    run(["mutate"], yaml.safe_dump(document).encode())


@FUZZ
@given(text=YAML_NOISE)
def test_mutate_never_tracebacks_on_yaml_noise(text: str) -> None:
    run(["mutate"], text.encode(), stdin=True)


TOML_NOISE = st.text(alphabet="[]{}=.\"'#\n abc0123456789-+_:eE", max_size=200)


@FUZZ
@given(toml=TOML_NOISE, header=st.booleans())
def test_initdata_never_tracebacks(toml: str, header: bool) -> None:
    body = (b'algorithm = "sha256"\nversion = "0.1.0"\n' if header else b"") + toml.encode()
    run(["initdata", "digest"], body)
    run(["initdata", "encode"], body)
    encoded = base64.b64encode(gzip.compress(body, mtime=0)).decode()
    run(["initdata", "decode"], encoded.encode())


@FUZZ
@given(raw=st.binary(max_size=300))
def test_initdata_decode_never_tracebacks_on_bytes(raw: bytes) -> None:
    run(["initdata", "decode"], raw)
    run(["initdata", "decode"], base64.b64encode(raw))
    run(["initdata", "decode"], base64.b64encode(b"\x1f\x8b" + raw))


@pytest.mark.parametrize("members", [1, 16, 17, 5000])
def test_initdata_decode_gzip_members(members: int) -> None:
    body = gzip.compress(b'algorithm = "sha256"\nversion = "0.1.0"\n', mtime=0) + gzip.compress(b"") * (
        members - 1
    )
    assert run(["initdata", "decode"], base64.b64encode(body)) == (0 if members <= 16 else 2)
