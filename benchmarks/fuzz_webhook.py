"""Fuzz the live HTTPS webhook with malformed and random AdmissionReviews.

Starts ``webhook serve`` as a child process on loopback (sim.server.launch) and sends
``--count`` requests (default 20,000; bounded by ``--max-seconds`` too) from a few
keep-alive TLS clients: random bytes, truncated JSON, reviews with fields deleted or
replaced by values of the wrong type, pods with absurd quantities, deep nesting, wrong
media types - and, now and then, one of issue 19's large or deeply repeated structures
(a million empty containers, 150,000 resource entries or JSON escapes, 60,000 volumes,
thousands of exponent numbers: up to 3 MB each). A client's mistake must never get a 5xx,
the server must never drop a connection without an answer or die, and at the end it must
still answer a valid review correctly. Meanwhile one more client sends the valid review
every 50 ms: its worst latency must stay under ``--max-normal-latency`` (3 s by default,
well under kube-apiserver's 10 s webhook timeout). Prints the counts; exits 1 on any
violation. Reproducible with ``--seed``; CI runs it with a bounded ``--count`` (tox -e fuzz).
"""

from __future__ import annotations

import argparse
import base64
import collections
import copy
import http.client
import json
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jsonpatch

from sim.peerpods.webhook import mutate_pod
from sim.server.launch import LaunchedServer, launched

ROOT = Path(__file__).resolve().parents[1]
REVIEW: dict[str, Any] = json.loads((ROOT / "fixtures" / "webhook" / "review-3k.json").read_text())
QUANTITIES = [
    "1",
    "0",
    "-1",
    "1e999",
    "1e-999",
    "0.0001m",
    "9999999999Ei",
    "",
    "1.5Gi",
    "200m",
    "1E3",
    "+1",
    "Infinity",
    "NaN",
    "1Gii",
    " 1",
    "0x10",
    "1_000",
    "\u0661",
]
WEIRD: list[Any] = [
    None,
    True,
    0,
    -1,
    2**70,
    1.5e308,
    "",
    "x" * 1000,
    [],
    {},
    [None],
    {"": None},
    "\u2028",
    -0.0,
]


def weird(rng: random.Random) -> Any:
    choice = rng.random()
    if choice < 0.5:
        return copy.deepcopy(rng.choice(WEIRD))  # fresh: a shared [] could end up inside itself
    if choice < 0.8:
        return rng.choice(QUANTITIES)
    return {"nested": [weird(rng) for _ in range(rng.randint(0, 3))]}


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location inside a JSON value (for picking one to break)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def mutate(rng: random.Random, review: dict[str, Any]) -> dict[str, Any]:
    """Break one to three places of a valid review: delete, retype or nonsense quantities."""
    broken = copy.deepcopy(review)
    for _ in range(rng.randint(1, 3)):
        location = rng.choice(paths(broken)[1:])
        parent: Any = broken
        for step in location[:-1]:
            parent = parent[step]
        last = location[-1]
        if rng.random() < 0.3 and isinstance(parent, dict):
            del parent[last]
        else:
            parent[last] = weird(rng)
    return broken


def quantity_pod(rng: random.Random) -> dict[str, Any]:
    """A sound envelope around a peer pod whose resources are nonsense."""
    review = copy.deepcopy(REVIEW)
    for container in review["request"]["object"]["spec"]["containers"]:
        container["resources"] = {
            kind: {name: rng.choice([*QUANTITIES, *WEIRD]) for name in ("cpu", "memory", "nvidia.com/gpu")}
            for kind in ("requests", "limits")
        }
    return review


def deep(rng: random.Random) -> bytes:
    depth = rng.choice([10, 500, 1100, 5000])
    return b"[" * depth + b"]" * depth


def _peer_review(containers: bytes = b'[{"name":"a"}]', spec_extra: bytes = b"") -> bytes:
    return (
        b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"large",'
        b'"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"large"},'
        b'"spec":{"runtimeClassName":"kata-remote","containers":' + containers + spec_extra + b"}}}}"
    )


def _large_structures() -> dict[str, bytes]:
    """Issue 19's large and deeply repeated reviews, each at most 3 MB (built once)."""
    entries = b",".join(b'"r%d":"%d"' % (i, i) for i in range(150_000))
    return {
        "a million empty containers": _peer_review(b"[" + b",".join([b"{}"] * 1_000_000) + b"]"),
        "containers at the bound": _peer_review(b"[" + b",".join([b"{}"] * 10_000) + b"]"),
        "150,000 resource entries": _peer_review(
            b'[{"name":"a","resources":{"requests":{' + entries + b"}}}]"
        ),
        "60,000 volumes": _peer_review(
            spec_extra=b',"volumes":['
            + b",".join(b'{"name":"v","emptyDir":{"sizeLimit":"%dKi"}}' % i for i in range(60_000))
            + b"]"
        ),
        "150,000 escaped quantities": _peer_review(
            spec_extra=b',"overhead":{' + b",".join(b'"r%d":"\\u0031"' % i for i in range(150_000)) + b"}"
        ),
        "exponent numbers": _peer_review(
            spec_extra=b',"overhead":{' + b",".join(b'"r%d":%de3' % (i, i) for i in range(15_000)) + b"}"
        ),
    }


LARGE: dict[str, bytes] = {}


def case(rng: random.Random) -> tuple[str, bytes, str]:
    """One request: (case name, body, content type)."""
    pick = rng.random()
    valid = json.dumps(REVIEW).encode()
    if pick < 0.01:
        if not LARGE:
            LARGE.update(_large_structures())
        name = rng.choice(sorted(LARGE))
        return f"large: {name}", LARGE[name], "application/json"
    if pick < 0.08:
        return "random bytes", rng.randbytes(rng.randint(0, 4096)), "application/json"
    if pick < 0.16:
        return "truncated JSON", valid[: rng.randint(0, len(valid) - 1)], "application/json"
    if pick < 0.20:
        return "deep nesting", deep(rng), "application/json"
    if pick < 0.24:
        return (
            "wrong media type",
            valid,
            rng.choice(["text/plain", "", "application/yaml", "application/json-patch+json"]),
        )
    if pick < 0.45:
        return "bad quantities", json.dumps(quantity_pod(rng)).encode(), "application/json"
    if pick < 0.50:
        return "random JSON value", json.dumps(weird(rng)).encode(), "application/json"
    return "broken fields", json.dumps(mutate(rng, REVIEW)).encode(), "application/json; charset=utf-8"


class Tally:
    """Counts shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: collections.Counter[int] = collections.Counter()
        self.cases: collections.Counter[str] = collections.Counter()
        self.dropped = 0
        self.refused_in_review = 0
        self.server_errors: list[str] = []
        self.drop_samples: list[str] = []
        self.sent = 0


def client(server: LaunchedServer, seed: int, quota: int, deadline: float, tally: Tally) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context(), timeout=10)
    for _ in range(quota):
        if time.monotonic() > deadline:
            break
        name, body, content_type = case(rng)
        headers = {"Content-Type": content_type} if content_type else {}
        try:
            conn.request("POST", "/mutate-v1-pod", body=body, headers=headers)
            reply = conn.getresponse()
            data = reply.read()
            status = reply.status
        except (OSError, http.client.HTTPException) as exc:
            with tally.lock:
                tally.dropped += 1
                if len(tally.drop_samples) < 10:
                    tally.drop_samples.append(f"{name}: {type(exc).__name__} {exc} for {body[:200]!r}")
                tally.sent += 1
            conn.close()
            conn = http.client.HTTPSConnection(
                "127.0.0.1", server.port, context=server.ssl_context(), timeout=10
            )
            continue
        with tally.lock:
            tally.sent += 1
            tally.statuses[status] += 1
            tally.cases[name] += 1
            if status == 200 and b'"allowed":false' in data:
                tally.refused_in_review += 1
            if status >= 500 and len(tally.server_errors) < 10:
                tally.server_errors.append(f"{name}: {status} {data[:200]!r} for {body[:300]!r}")
    conn.close()


def normal_client(server: LaunchedServer, stop: threading.Event, latencies: list[float]) -> None:
    """The valid review every 50 ms, on its own keep-alive connection: its latency while the others fuzz."""
    body = json.dumps(REVIEW).encode()
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context(), timeout=30)
    while not stop.is_set():
        started = time.monotonic()
        try:
            conn.request("POST", "/mutate-v1-pod", body=body, headers={"Content-Type": "application/json"})
            conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPSConnection(
                "127.0.0.1", server.port, context=server.ssl_context(), timeout=30
            )
            latencies.append(float("inf"))
            continue
        latencies.append(time.monotonic() - started)
        stop.wait(0.05)
    conn.close()


def still_correct(server: LaunchedServer) -> bool:
    """The server answers a valid review with the reference mutation."""
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context(), timeout=10)
    conn.request(
        "POST",
        "/mutate-v1-pod",
        body=json.dumps(REVIEW).encode(),
        headers={"Content-Type": "application/json"},
    )
    answer = json.loads(conn.getresponse().read())
    conn.close()
    pod = REVIEW["request"]["object"]
    patch = json.loads(base64.b64decode(answer["response"]["patch"]))
    return bool(jsonpatch.apply_patch(pod, patch) == mutate_pod(pod))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=20_000, help="requests to send (default 20000)")
    parser.add_argument("--max-seconds", type=float, default=300, help="stop sending after this long")
    parser.add_argument("--clients", type=int, default=4, help="concurrent keep-alive TLS clients")
    parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same requests)")
    parser.add_argument(
        "--max-normal-latency",
        type=float,
        default=3.0,
        help="worst latency allowed for the valid reviews sent alongside (seconds, default 3)",
    )
    args = parser.parse_args()
    tally = Tally()
    started = time.monotonic()
    with launched() as server:
        deadline = started + args.max_seconds
        quota = -(-args.count // args.clients)
        threads = [
            threading.Thread(target=client, args=(server, args.seed * 1000 + i, quota, deadline, tally))
            for i in range(args.clients)
        ]
        stop = threading.Event()
        latencies: list[float] = []
        normal = threading.Thread(target=normal_client, args=(server, stop, latencies))
        normal.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stop.set()
        normal.join()
        alive = server.process.poll() is None
        correct = alive and still_correct(server)
        log = server.log_text()
    elapsed = time.monotonic() - started
    five_xx = sum(n for status, n in tally.statuses.items() if status >= 500)
    print(
        f"fuzz_webhook: {tally.sent} requests in {elapsed:.1f} s (seed {args.seed}, {args.clients} clients)"
    )
    print("  by case:   " + ", ".join(f"{k} {v}" for k, v in sorted(tally.cases.items())))
    print("  by status: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.statuses.items())))
    print(f"  of the 200s, reviews refusing the pod (allowed: false, code 400): {tally.refused_in_review}")
    print(
        f"  5xx: {five_xx}   dropped connections: {tally.dropped}   server alive: {alive}   "
        f"valid review still correct: {correct}"
    )
    for sample in tally.drop_samples:
        print(f"  dropped: {sample}")
    for sample in tally.server_errors:
        print(f"  5xx sample: {sample}")
    ordered = sorted(latencies)
    worst = ordered[-1] if ordered else float("inf")
    median = ordered[len(ordered) // 2] if ordered else float("inf")
    print(
        f"  valid reviews alongside: {len(ordered)}, median {median * 1000:.1f} ms, "
        f"worst {worst * 1000:.1f} ms (bound {args.max_normal_latency:g} s)"
    )
    bounded = worst <= args.max_normal_latency
    clean_log = "Traceback" not in log
    if not clean_log:
        print("  server log has tracebacks (an unhandled error is a crash of that request):\n" + log[-3000:])
    complete = tally.sent >= args.count or elapsed >= args.max_seconds
    if not complete:
        print(f"  only {tally.sent} of {args.count} requests were sent (a client thread failed)")
    ok = five_xx == 0 and tally.dropped == 0 and alive and correct and complete and clean_log and bounded
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
