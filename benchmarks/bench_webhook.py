"""Throughput and latency of the HTTPS webhook, per HTTP stack, measured with wrk.

For each stack the script starts two servers as child processes on loopback - one
answering real AdmissionReviews, one answering a constant pre-built reply after reading
the body (the stack's ceiling) - and drives each with wrk (a C load generator: Python
clients would measure themselves): keep-alive, 32 connections, TLS 1.3, the realistic
3 KB pod review from fixtures/webhook/review-3k.json. It prints reviews/s, p50, p99 and
the ratio of the two. Figures, not a timed test: the machine's other load shows in them,
so each is the best of ``--rounds`` interleaved runs.

    python benchmarks/bench_webhook.py [--duration 8] [--stacks granian:1,granian:2,uvicorn:1,stdlib:1]

Goal (issue 3): >= 20,000 reviews/s, p99 < 5 ms, >= 60 % of the stack's own ceiling.
Needs ``wrk`` (Debian: ``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sim.ports import free_port
from sim.server.tls import self_signed

ROOT = Path(__file__).resolve().parents[1]
REVIEW = ROOT / "fixtures" / "webhook" / "review-3k.json"
STACKS_SCRIPT = Path(__file__).with_name("bench_webhook_stacks.py")
CONNECTIONS = 32

LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("REVIEW_BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), errors, summary.errors.status))
end
"""


@dataclass
class Measurement:
    """One wrk run: requests per second and latency percentiles in milliseconds."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx: int
    #: CPU time of the server's processes per request: unlike req/s, barely moved by
    #: other load on the machine, so it shows what a review costs the server itself.
    cpu_us: float = 0.0


def wait_ready(port: int, ca: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until a POST answers (health paths are the same handler, but a POST proves the route)."""
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=1)
            conn.request("POST", "/mutate-v1-pod", body=b"{}", headers={"Content-Type": "application/json"})
            conn.getresponse().read()
            conn.close()
            return
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)
    raise RuntimeError("server not ready")


def wrk(port: int, body: Path, lua: Path, duration: int) -> Measurement:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{CONNECTIONS}",
            f"-d{duration}s",
            "-s",
            str(lua),
            f"https://127.0.0.1:{port}/mutate-v1-pod",
        ],
        env={"REVIEW_BODY": str(body), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    requests, micros, p50, p99, errors, non_2xx = map(int, match.groups())
    return Measurement(requests / (micros / 1e6), p50 / 1000, p99 / 1000, errors, non_2xx)


def tree_cpu_seconds(root: int) -> float:
    """User+system CPU seconds of a process and its direct children (granian's workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        pid, ppid = int(stat.parent.name), int(fields[1])
        if root in (pid, ppid):
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def measure(
    stack: str,
    workers: int,
    app: str,
    creds: tuple[Path, Path, Path],
    files: tuple[Path, Path],
    duration: int,
) -> Measurement:
    cert, key, ca = creds
    port = free_port()
    cmd = [sys.executable, str(STACKS_SCRIPT), stack, "--app", app, "--port", str(port)]
    cmd += ["--cert", str(cert), "--key", str(key), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, ca, proc)
        wrk(port, files[0], files[1], 1)  # warm-up: connections, TLS sessions, caches
        before = tree_cpu_seconds(proc.pid)
        result = wrk(port, files[0], files[1], duration)
        spent = tree_cpu_seconds(proc.pid) - before
        requests = result.rps * duration
        result.cpu_us = spent / requests * 1e6 if requests else 0.0
        return result
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run (default 8)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="review/ceiling pairs per stack; the best of each is shown (default 3)",
    )
    parser.add_argument(
        "--stacks",
        default="granian:1,granian:2,uvicorn:1,stdlib:1",
        help="STACK:WORKERS list (stacks: granian, granian-issue11, uvicorn, stdlib)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench_webhook: wrk not found (apt-get install -y wrk)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    try:
        creds = self_signed(work / "tls", ["127.0.0.1"], work / "ca.pem")
        assert creds.ca is not None
        body = work / "review.json"
        body.write_bytes(json.dumps(json.loads(REVIEW.read_text()), separators=(",", ":")).encode())
        lua = work / "post.lua"
        lua.write_text(LUA)
        print(
            f"review body {body.stat().st_size} bytes, {CONNECTIONS} keep-alive connections, "
            "TLS 1.3, loopback"
        )
        print(
            f"{'stack':<12} {'reviews/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'ceiling/s':>10} {'c-p99 ms':>9} {'ratio':>6} "
            f"{'cpu µs/review':>13} {'cpu µs/ceil':>11}  errors"
        )
        for spec in args.stacks.split(","):
            stack, _, workers = spec.partition(":")
            files = (body, lua)
            tls = (creds.cert, creds.key, creds.ca)
            real_runs: list[Measurement] = []
            ceiling_runs: list[Measurement] = []
            for _ in range(args.rounds):  # interleaved, so both see the same background load
                real_runs.append(measure(stack, int(workers or 1), "review", tls, files, args.duration))
                ceiling_runs.append(measure(stack, int(workers or 1), "constant", tls, files, args.duration))
            real = max(real_runs, key=lambda m: m.rps)
            ceiling = max(ceiling_runs, key=lambda m: m.rps)
            ratio = real.rps / ceiling.rps if ceiling.rps else 0.0
            print(
                f"{spec:<12} {real.rps:>10,.0f} {real.p50_ms:>8.2f} {real.p99_ms:>8.2f} "
                f"{ceiling.rps:>10,.0f} {ceiling.p99_ms:>9.2f} {ratio:>6.0%} "
                f"{real.cpu_us:>13.1f} {ceiling.cpu_us:>11.1f}  "
                f"{real.errors + ceiling.errors} io, {real.non_2xx + ceiling.non_2xx} non-2xx",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
