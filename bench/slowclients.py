"""Slow and idle clients against `recommender serve`: does everyone else still get answers?

    python bench/slowclients.py [--workdir DIR] [--partial 50] [--idle 50] [--body 0]
                                [--drip 0] [--seconds 30]

Starts `recommender serve` (2 workers, its default threads or --server-threads) on 127.0.0.1
over the shipped seeds (or the catalog and models already in --workdir), then for --seconds
holds --partial connections that send `GET /healthz HTTP/1.1\\r\\nHost: x\\r\\n` and
nothing more, --idle connections that send nothing, --body connections that send a POST
head declaring 1,000 bytes of body and then 10 of them, and --drip connections that send a
request one byte a second (each reopened when the server drops it, as an attacker would),
while 2 ordinary clients alternate `/healthz` and GET by URL on fresh connections. Prints
JSON: the ordinary requests' p50/p99/max latency and failures, and how often the server
dropped a stalled connection. Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from serve import HOST, start_server, wait_ready  # noqa: E402

SEED_URL = ("https://www.biometricupdate.com/202002/privacy-rights-groups-call-for-day-of-"
            "action-to-ban-facial-recognition-at-all-schools")
PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
BODY = (b"POST /v1/related HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n" + b'{"title": "')
DRIP = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
MAX_ORDINARY = 200_000  # requests, whatever --seconds says


def _hold(port: int, payload: bytes, until: float, drops: list[int],
          drip: bool = False) -> None:
    """One stalled connection, reopened whenever the server closes it, until `until`: it
    sends `payload` at once, or one byte a second when `drip`."""
    while time.monotonic() < until:
        try:
            with socket.create_connection((HOST, port), timeout=5) as s:
                if payload and not drip:
                    s.sendall(payload)
                s.settimeout(1.0 if drip else 0.5)
                sent = 0
                while time.monotonic() < until:
                    if drip and sent < len(payload):
                        s.sendall(payload[sent:sent + 1])
                        sent += 1
                    try:
                        if s.recv(4096) == b"":
                            drops.append(1)
                            break
                    except TimeoutError:
                        continue
        except OSError:
            time.sleep(0.1)


def _ordinary(port: int, until: float, latencies: list[float], failures: list[str]) -> None:
    paths = ["/healthz", "/v1/related?k=5&url=" + urllib.parse.quote(SEED_URL, safe="")]
    i = 0
    while time.monotonic() < until and len(latencies) < MAX_ORDINARY:
        path = paths[i % 2]
        i += 1
        started = time.perf_counter()
        try:
            with socket.create_connection((HOST, port), timeout=10) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                          .encode())
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            if not data.startswith(b"HTTP/1.1 200"):
                failures.append(data[:40].decode(errors="replace"))
            else:
                latencies.append((time.perf_counter() - started) * 1000)
        except OSError as exc:
            failures.append(type(exc).__name__)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, help="holds catalog.sqlite3 and models/")
    ap.add_argument("--partial", type=int, default=50)
    ap.add_argument("--idle", type=int, default=50)
    ap.add_argument("--body", type=int, default=0, help="connections stalling in a POST body")
    ap.add_argument("--drip", type=int, default=0, help="connections sending a byte a second")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--port", type=int, default=8797)
    ap.add_argument("--server-threads", type=int, help="threads per server worker")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        if not (work / "models").exists():
            from recommender.catalog import Catalog
            from recommender.importer import import_paths
            from recommender.training import train

            with Catalog(work / "catalog.sqlite3") as catalog:
                import_paths(catalog, [HERE.parent / "seeds"], on_error=lambda p, r: None)
                train(catalog, work / "models")
        env = {"RECOMMENDER_CATALOG": str(work / "catalog.sqlite3"),
               "RECOMMENDER_MODELS": str(work / "models")}
        proc = start_server(env, args.port, work / "serve.log", threads=args.server_threads)
        try:
            wait_ready(args.port)
            until = time.monotonic() + args.seconds
            drops: list[int] = []
            holders = [threading.Thread(target=_hold, args=(args.port, payload, until, drops))
                       for payload in ([PARTIAL] * args.partial + [b""] * args.idle
                                       + [BODY] * args.body)]
            holders += [threading.Thread(target=_hold, args=(args.port, DRIP, until, drops, True))
                        for _ in range(args.drip)]
            for t in holders:
                t.start()
            time.sleep(1.0)  # every stalled connection is open before the clock starts
            latencies: list[float] = []
            failures: list[str] = []
            clients = [threading.Thread(target=_ordinary,
                                        args=(args.port, until, latencies, failures))
                       for _ in range(2)]
            for t in clients:
                t.start()
            for t in clients + holders:
                t.join()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            if args.workdir is None:
                shutil.rmtree(work / "models", ignore_errors=True)
    lat = np.array(latencies) if latencies else np.array([np.nan])
    print(json.dumps({
        "partial_connections": args.partial, "idle_connections": args.idle,
        "stalled_body_connections": args.body, "dripping_connections": args.drip,
        "server_threads_per_worker": args.server_threads or "default",
        "seconds": args.seconds, "ordinary_requests": len(latencies),
        "failed_requests": len(failures), "failures": sorted(set(failures))[:5],
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "max_ms": round(float(np.max(lat)), 2),
        "stalled_connections_dropped_by_server": len(drops),
    }))


if __name__ == "__main__":
    main()
