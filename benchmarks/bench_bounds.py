"""Lockout and bloat: the webhook server under idle connections and unique large quantities.

Issue 11 found that ~1,024 idle TLS connections locked every client out of the server, and
that unique large quantities grew its memory for good. This script measures both, each
beside its baseline, in one run, against real server processes on loopback:

1. **Idle connections.** For the shipped server and for issue 11's configuration
   (``granian-issue11`` in bench_webhook_stacks.py: HTTP version sniffing, granian's default
   limits), the latency of a real review on a fresh TLS connection - first with no idle
   connections (the baseline), then while N idle TLS connections (default 2,000) that
   completed the handshake and sent nothing are held open. Both servers run with a 60 s read
   timeout here, so that all N are still held while the review is timed: this measures the
   connection limit, not the deadline.
2. **Deadlines.** On both servers with the default 10 s read timeout: how long each
   keeps a TCP connection that never starts the TLS handshake, a TLS connection that sends
   nothing, and a keep-alive connection after its first answer.
3. **Memory.** The shipped server's RSS (main process and worker) after a warm-up, after
   10,000 reviews of the same pod (the baseline), after 10,000 reviews each carrying unique
   quantities of the longest accepted length (sim.bounds.MAX_QUANTITY_CHARS), and after 100
   reviews each carrying a unique 2.9 MB quantity (refused, as issue 11's reproduction).

    python benchmarks/bench_bounds.py [--idle 2000] [--reviews 10000] [--skip-deadlines]

Goals (issue 11): a review answered in < 100 ms while 2,000 idle TLS connections are held;
RSS after 10,000 reviews of unique large quantities within 50 MiB of its start.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sim.bounds import MAX_QUANTITY_CHARS
from sim.ports import free_port
from sim.server.limits import open_files_limit
from sim.server.tls import self_signed

ROOT = Path(__file__).resolve().parents[1]
REVIEW: dict[str, Any] = json.loads((ROOT / "fixtures" / "webhook" / "review-3k.json").read_text())
STACKS_SCRIPT = Path(__file__).with_name("bench_webhook_stacks.py")
MiB = 1024 * 1024
#: Seconds a probe waits for an answer before it counts as locked out.
PROBE_TIMEOUT = 5.0
#: Issue 11's goals.
GOAL_LATENCY_S = 0.100
GOAL_RSS_MIB = 50.0


class Server:
    """A server process from bench_webhook_stacks.py and how to reach it."""

    def __init__(self, proc: subprocess.Popen[bytes], port: int, ca: Path) -> None:
        self.proc, self.port = proc, port
        self.context = ssl.create_default_context(cafile=str(ca))

    def rss_mib(self) -> float:
        """Resident memory of the server process and its children (granian's workers)."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if self.proc.pid in (int(stat.parent.name), int(fields[1])):
                total += int(fields[21]) * 4096  # rss, in pages
        return total / MiB

    def tls(self, timeout: float = PROBE_TIMEOUT) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            return self.context.wrap_socket(raw, server_hostname="127.0.0.1")
        except BaseException:
            raw.close()
            raise


@contextmanager
def server(stack: str, work: Path, read_timeout: float) -> Iterator[Server]:
    creds = self_signed(work / f"tls-{stack}", ["127.0.0.1"], work / f"ca-{stack}.pem")
    assert creds.ca is not None
    port = free_port()
    cmd = [sys.executable, str(STACKS_SCRIPT), stack, "--port", str(port), "--cert", str(creds.cert)]
    cmd += ["--key", str(creds.key), "--read-timeout", str(read_timeout)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    running = Server(proc, port, creds.ca)
    try:
        deadline = time.monotonic() + 30
        while not str(review_once(running, body_of(REVIEW), timeout=1)[0]).startswith("200"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{stack}: server did not start (exit {proc.poll()})")
            time.sleep(0.1)
        yield running
    finally:
        proc.terminate()
        proc.wait(30)


def body_of(review: dict[str, Any]) -> bytes:
    return json.dumps(review, separators=(",", ":")).encode()


def review_once(
    srv: Server, body: bytes, timeout: float = PROBE_TIMEOUT, conn: http.client.HTTPSConnection | None = None
) -> tuple[int | str, float]:
    """POST one review (on a fresh connection unless one is given): status and seconds taken.

    The status of a 200 says what the review decided: "200 allowed" or "200 refused".
    """
    start = time.monotonic()
    own = conn is None
    if conn is None:
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=srv.context, timeout=timeout)
    try:
        conn.request("POST", "/mutate-v1-pod", body=body, headers={"Content-Type": "application/json"})
        answer = conn.getresponse()
        data = answer.read()
        status: int | str = answer.status
        if status == 200 and b'"allowed":' in data:
            status = "200 allowed" if b'"allowed":true' in data else "200 refused"
    except (OSError, http.client.HTTPException) as exc:
        status = type(exc).__name__
    finally:
        if own:
            conn.close()
    return status, time.monotonic() - start


def probe(srv: Server, count: int = 20) -> tuple[str, float | None]:
    """Median and worst latency of ``count`` reviews, each on a new TLS connection.

    Gives up after three failures in a row (a locked-out server would take minutes).
    Returns the text and the worst latency in seconds (None when nothing was answered).
    """
    body = body_of(REVIEW)
    ok: list[float] = []
    failed: list[str] = []
    for _ in range(count):
        status, seconds = review_once(srv, body)
        if status == "200 allowed":
            ok.append(seconds)
        else:
            failed.append(str(status))
            if len(failed) >= 3 and not ok:
                break
    if not ok:
        return f"no answer within {PROBE_TIMEOUT:g} s ({failed[0]} x{len(failed)})", None
    text = f"median {statistics.median(ok) * 1000:7.1f} ms, max {max(ok) * 1000:7.1f} ms"
    return text + (f", {len(failed)} failed ({failed[0]})" if failed else ""), max(ok)


def open_idle(srv: Server, count: int) -> tuple[list[ssl.SSLSocket], int]:
    """Open ``count`` TLS connections that send nothing; those the server took, and failures."""

    def one(_: int) -> ssl.SSLSocket | None:
        try:
            return srv.tls(timeout=PROBE_TIMEOUT)
        except OSError:
            return None

    with ThreadPoolExecutor(128) as pool:
        opened = list(pool.map(one, range(count)))
    held = [sock for sock in opened if sock is not None]
    return held, count - len(held)


def still_open(sockets: list[ssl.SSLSocket]) -> int:
    """How many of ``sockets`` the server has not closed."""
    alive = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            alive += bool(sock.recv(1))  # a byte would be odd; b"" is a close
        except (ssl.SSLWantReadError, BlockingIOError):
            alive += 1
        except OSError:
            pass
    return alive


def idle_figures(work: Path, idle: int, goals: list[str]) -> None:
    print(f"\n1. a review on a new TLS connection, with and without {idle:,} idle TLS connections held")
    print(f"{'server':<18} {'no idle connections':<40} {'idle held':>9}  with them held")
    for stack in ("granian", "granian-issue11"):
        with server(stack, work, read_timeout=60) as srv:
            send_all(srv, lambda _: body_of(REVIEW), 200)  # warm-up
            baseline, _ = probe(srv)
            rss_before = srv.rss_mib()
            sockets, failed = open_idle(srv, idle)
            try:
                held = still_open(sockets)
                rss_held = srv.rss_mib() - rss_before
                loaded, worst = probe(srv)
                held = min(held, still_open(sockets))  # none was closed while the probe ran
                print(f"{stack:<18} {baseline:<40} {held:>9,}  {loaded}", flush=True)
                per = f" ({rss_held * 1024 / held:.1f} KiB each)" if held else ""
                print(f"{'':<18} server RSS {rss_held:+.1f} MiB while they are held{per}")
                if stack == "granian":
                    met = worst is not None and worst < GOAL_LATENCY_S and held == idle
                    goals.append(
                        f"a review < {GOAL_LATENCY_S * 1000:g} ms with {idle:,} idle TLS connections held: "
                        + ("met" if met else "NOT met")
                    )
                if failed:
                    print(
                        f"{'':<18} ({failed:,} idle connections: no TLS handshake within {PROBE_TIMEOUT:g} s)"
                    )
            finally:
                for sock in sockets:
                    sock.close()


def time_to_close(make: Callable[[], socket.socket], limit: float) -> str:
    """Seconds until the server closes a connection that ``make`` leaves silent."""
    sock = make()
    start = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(4096):
            pass
        return f"closed after {time.monotonic() - start:5.1f} s"
    except TimeoutError:
        return f"still open after {limit:g} s"
    except OSError:
        return f"closed after {time.monotonic() - start:5.1f} s (reset)"
    finally:
        sock.close()


def deadline_figures(work: Path) -> None:
    print("\n2. how long each server keeps a silent connection (--read-timeout 10, the default)")
    limit = 40.0
    for stack in ("granian", "granian-issue11"):
        with server(stack, work, read_timeout=10) as srv:

            def raw() -> socket.socket:
                return socket.create_connection(("127.0.0.1", srv.port))

            def keep_alive(srv: Server = srv) -> socket.socket:
                sock = srv.tls()
                body = body_of(REVIEW)
                head = "POST /mutate-v1-pod HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                sock.sendall(head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                sock.settimeout(PROBE_TIMEOUT)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += sock.recv(65536)
                return sock

            cases: dict[str, Callable[[], socket.socket]] = {
                "TCP, no ClientHello": raw,
                "TLS, nothing sent": srv.tls,
                "keep-alive, after an answer": keep_alive,
            }
            results: dict[str, str] = {}

            def watch(name: str, make: Callable[[], socket.socket], out: dict[str, str] = results) -> None:
                out[name] = time_to_close(make, limit)

            threads = [threading.Thread(target=watch, args=item) for item in cases.items()]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for name in cases:
                print(f"{stack:<18} {name:<30} {results[name]}", flush=True)


def unique_review(index: int, width: int) -> bytes:
    """The fixture review whose quantities are all unique, ``width`` characters long."""
    review = copy.deepcopy(REVIEW)
    review["request"]["uid"] = f"bounds-{index}"
    for slot, container in enumerate(review["request"]["object"]["spec"]["containers"]):
        seed = index * 8 + slot * 4
        resources = container["resources"]
        resources["requests"]["cpu"] = "0." + f"{seed:0{width - 2}d}"  # tiny, unique
        resources["limits"]["cpu"] = "0." + f"{seed + 1:0{width - 2}d}"
        resources["requests"]["memory"] = f"{seed + 2:0{width}d}"  # leading zeros: a few bytes
        resources["limits"]["memory"] = f"{seed + 3:0{width}d}"
    return body_of(review)


def huge_review(index: int, size: int) -> bytes:
    """The fixture review with one unique quantity of ``size`` characters (issue 11's case)."""
    review = copy.deepcopy(REVIEW)
    review["request"]["uid"] = f"bounds-huge-{index}"
    first = review["request"]["object"]["spec"]["containers"][0]["resources"]
    first["requests"]["cpu"] = f"{index:0{size}d}"
    return body_of(review)


def send_all(srv: Server, bodies: Callable[[int], bytes], count: int, threads: int = 4) -> dict[str, int]:
    """Send ``count`` reviews over ``threads`` keep-alive connections; count the statuses."""
    statuses: dict[str, int] = {}
    lock = threading.Lock()

    def worker(first: int) -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=srv.context, timeout=30)
        for index in range(first, count, threads):
            status, _ = review_once(srv, bodies(index), conn=conn)
            if isinstance(status, str) and not status.startswith("200"):  # a closed connection: a new one
                conn.close()
                conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=srv.context, timeout=30)
            with lock:
                statuses[str(status)] = statuses.get(str(status), 0) + 1
        conn.close()

    pool = [threading.Thread(target=worker, args=(first,)) for first in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return statuses


def memory_figures(work: Path, reviews: int, goals: list[str]) -> None:
    print(f"\n3. shipped server RSS (main process + worker), {MAX_QUANTITY_CHARS}-character quantities")
    same = body_of(REVIEW)
    with server("granian", work, read_timeout=10) as srv:
        send_all(srv, lambda _: same, 200)
        start = srv.rss_mib()
        print(f"{'after warm-up (200 reviews)':<52} {start:7.1f} MiB", flush=True)
        steps: list[tuple[str, Callable[[int], bytes], int]] = [
            (f"+ {reviews:,} reviews of the same pod", lambda _: same, reviews),
            (
                f"+ {reviews:,} reviews, unique {MAX_QUANTITY_CHARS}-char quantities",
                lambda i: unique_review(i, MAX_QUANTITY_CHARS),
                reviews,
            ),
            (
                "+ 100 reviews, a unique 2.9 MB quantity each",
                lambda i: huge_review(i, 2_900_000),
                100,
            ),
        ]
        for label, bodies, count in steps:
            began = time.monotonic()
            statuses = send_all(srv, bodies, count)
            rss = srv.rss_mib()
            answers = ", ".join(f"{n:,} {s}" for s, n in sorted(statuses.items()))
            print(
                f"{label:<52} {rss:7.1f} MiB ({rss - start:+6.1f} MiB from start; {answers}; "
                f"{count / (time.monotonic() - began):,.0f}/s)",
                flush=True,
            )
            if "unique" in label and "2.9 MB" not in label:
                goals.append(
                    f"RSS after {count:,} reviews of unique {MAX_QUANTITY_CHARS}-char quantities within "
                    f"{GOAL_RSS_MIB:g} MiB of its start ({rss - start:+.1f} MiB): "
                    + ("met" if rss - start <= GOAL_RSS_MIB else "NOT met")
                )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--idle", type=int, default=2000, help="idle TLS connections to hold (default 2000)")
    parser.add_argument("--reviews", type=int, default=10_000, help="reviews per memory step (default 10000)")
    parser.add_argument("--skip-deadlines", action="store_true", help="skip part 2 (it waits ~40 s)")
    args = parser.parse_args()
    open_files = open_files_limit()
    if open_files < args.idle + 512:
        print(
            f"bench_bounds: open-files limit {open_files} is too low for --idle {args.idle}", file=sys.stderr
        )
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-bounds-"))
    goals: list[str] = []
    try:
        idle_figures(work, args.idle, goals)
        if not args.skip_deadlines:
            deadline_figures(work)
        memory_figures(work, args.reviews, goals)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\ngoals (issue 11):")
    for goal in goals:
        print(f"  {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
