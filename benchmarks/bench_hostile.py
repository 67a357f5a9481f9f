"""Issue 19's reproductions against a real ``webhook serve`` process: one review, slow readers.

1. **One huge review.** A peer pod with N empty containers (``{}``; 1,000,000 fill a 3.0 MB
   request, just under kube-apiserver's 3 MiB) is sent while a second client sends a small
   review and a ``/readyz`` probe every 100 ms. Recorded: the huge review's status, latency
   and reply size, the worker's peak RSS, and the worst latency of the small reviews and of
   ``/readyz`` while it was being handled. Done for 1,000,000 and 100,000 containers.
2. **Slow readers.** 4 TLS clients set ``SO_RCVBUF=4096``, send a review and never read the
   answer: first issue 19's 900 KB review (300,000 empty containers), then the review with
   the largest answer the server still gives (the container bound), sent 40 times pipelined
   on each connection. Three rounds of 4 such clients (``--rounds``), each watched for
   ``--slow-seconds``; recorded every 5 s: the worker's RSS and how many connections the
   server still holds. Memory a cut-off connection returned is reused by the next round,
   so the RSS stays flat; memory still pinned grows round after round.

    python benchmarks/bench_hostile.py [--source DIR] [--out results.json]

``--source DIR`` runs the server from another checkout (e.g. ``git worktree add`` of the
commit before a change), so that one script measures both sides; ``benchmarks/compare_hostile.py``
prints two result files side by side.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.ports import free_port

MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[1]
SMALL_REVIEW: dict[str, Any] = json.loads((ROOT / "fixtures" / "webhook" / "review-3k.json").read_text())


def review_body(containers: int) -> bytes:
    """An AdmissionReview of a peer pod with ``containers`` empty containers, as compact JSON."""
    head = (
        b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u",'
        b'"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"wide"},'
        b'"spec":{"runtimeClassName":"kata-remote","containers":['
    )
    return head + b",".join([b"{}"] * containers) + b"]}}}}"


@dataclass
class Server:
    """A ``webhook serve`` child process."""

    proc: subprocess.Popen[bytes]
    port: int
    context: ssl.SSLContext

    def worker_pids(self) -> list[int]:
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return pids

    def worker_memory(self, field: str = "VmRSS") -> float:
        """MiB of ``field`` (VmRSS, VmHWM) summed over the workers."""
        total = 0
        for pid in self.worker_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith(field + ":"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total / MiB

    def established(self) -> int:
        """TCP connections in state ESTABLISHED on the server's port (server side)."""
        count = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                parts = line.split()
                if int(parts[1].rsplit(":", 1)[1], 16) == self.port and parts[3] == "01":
                    count += 1
        return count

    def connection(self, timeout: float = 60.0) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=timeout)


@contextmanager
def server(source: Path | None) -> Iterator[Server]:
    """``webhook serve --self-signed`` from this checkout or from ``source``."""
    work = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    port = free_port()
    ca = work / "ca.pem"
    code = "import sys; from sim.harness.cli import main; sys.exit(main())"
    cmd = [sys.executable, "-c", code, "webhook", "serve", "--port", str(port), "--self-signed", str(ca)]
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=source or ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if ca.exists():
                srv = Server(proc, port, ssl.create_default_context(cafile=str(ca)))
                try:
                    conn = srv.connection(timeout=1)
                    conn.request("GET", "/readyz")
                    if conn.getresponse().status == 200:
                        break
                except (OSError, http.client.HTTPException):
                    pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {(work / 'server.log').read_text()}")
            time.sleep(0.1)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def post(conn: http.client.HTTPSConnection, body: bytes) -> tuple[int, int]:
    conn.request("POST", "/mutate-v1-pod", body=body, headers={"Content-Type": "application/json"})
    answer = conn.getresponse()
    return answer.status, len(answer.read())


def huge_review(srv: Server, containers: int) -> dict[str, Any]:
    """The huge review, with small reviews and /readyz probed alongside every 100 ms."""
    body = review_body(containers)
    small = json.dumps(SMALL_REVIEW).encode()
    small_latencies: list[float] = []
    ready_latencies: list[float] = []
    stop = threading.Event()

    def prober(ready: bool) -> None:
        conn = srv.connection()
        while not stop.is_set():
            start = time.monotonic()
            if ready:
                conn.request("GET", "/readyz")
                conn.getresponse().read()
                ready_latencies.append(time.monotonic() - start)
            else:
                post(conn, small)
                small_latencies.append(time.monotonic() - start)
            stop.wait(0.1)
        conn.close()

    threads = [threading.Thread(target=prober, args=(ready,)) for ready in (False, True)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    conn = srv.connection(timeout=120)
    start = time.monotonic()
    status, reply_bytes = post(conn, body)
    latency = time.monotonic() - start
    conn.close()
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    return {
        "containers": containers,
        "request_bytes": len(body),
        "status": status,
        "latency_s": round(latency, 3),
        "reply_bytes": reply_bytes,
        "worker_peak_rss_mib": round(srv.worker_memory("VmHWM"), 1),
        "small_reviews": len(small_latencies),
        "small_review_max_s": round(max(small_latencies), 3),
        "small_review_median_s": round(sorted(small_latencies)[len(small_latencies) // 2], 4),
        "readyz_max_s": round(max(ready_latencies), 3),
    }


def slow_readers(srv: Server, body: bytes, repeat: int, rounds: int, seconds: float) -> dict[str, Any]:
    """``rounds`` times: 4 TLS clients with a 4 KiB receive buffer send ``repeat`` reviews each
    and never read; sampled every 5 s for ``seconds``, then the clients go away (unread)."""
    request = (
        b"POST /mutate-v1-pod HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    before = srv.worker_memory()
    samples = []
    start = time.monotonic()
    for round_ in range(rounds):
        socks = []
        for _ in range(4):
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.connect(("127.0.0.1", srv.port))
            socks.append(srv.context.wrap_socket(raw, server_hostname="127.0.0.1"))

        def send(tls: ssl.SSLSocket) -> None:
            try:
                for _ in range(repeat):
                    tls.sendall(request)
            except OSError:
                pass  # the server cut the connection off

        for tls in socks:
            threading.Thread(target=send, args=(tls,), daemon=True).start()
        round_start = time.monotonic()
        while True:
            elapsed = time.monotonic() - round_start
            samples.append(
                {
                    "round": round_ + 1,
                    "t_s": round(time.monotonic() - start),
                    "worker_rss_mib": round(srv.worker_memory(), 1),
                    "held": srv.established(),
                }
            )
            if elapsed >= seconds:
                break
            time.sleep(5)
        # the clients vanish without reading or closing (their kernel keeps the sockets open)
        held_sockets.extend(socks)
    return {
        "request_bytes": len(body),
        "repeat": repeat,
        "rss_before_mib": round(before, 1),
        "samples": samples,
    }


#: Sockets of vanished clients, kept open (unread) until the script ends.
held_sockets: list[ssl.SSLSocket] = []


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path, help="run the server from this checkout")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    parser.add_argument("--slow-seconds", type=float, default=20.0, help="seconds per slow-reader round")
    parser.add_argument("--rounds", type=int, default=3, help="slow-reader rounds")
    parser.add_argument(
        "--bounded-containers", type=int, default=10_000, help="containers of the largest answer"
    )
    parser.add_argument("--skip", action="append", default=[], choices=["huge", "slow"])
    args = parser.parse_args()
    results: dict[str, Any] = {"source": str(args.source or ROOT)}
    if "huge" not in args.skip:
        for containers in (1_000_000, 100_000):
            with server(args.source) as srv:
                result = huge_review(srv, containers)
            print(json.dumps(result), flush=True)
            results[f"huge_{containers}"] = result
    if "slow" not in args.skip:
        cases = {
            "slow_900k": (review_body(300_000), 1),
            "slow_largest_answer": (review_body(args.bounded_containers), 40),
        }
        for name, (body, repeat) in cases.items():
            with server(args.source) as srv:
                result = slow_readers(srv, body, repeat, args.rounds, args.slow_seconds)
            for sock in held_sockets:
                sock.close()
            held_sockets.clear()
            print(name, json.dumps(result), flush=True)
            results[name] = result
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
