"""Load test of a running medbundle MONAI Label server: a fixed number of /infer requests, N at a time, then stop.

    # the server (label env): python -m medbundle.serving.label_app --studies /data/xrays --port 8000
    python scripts/benchmark_serving.py --url http://127.0.0.1:8000 --model pneumonia_xray --requests 200 \
        --concurrency 8 --pid <server pid> --json runs/serving_benchmark.json

Sends ``--requests`` POST ``/infer/<model>?image=<id>`` (ids from ``--images``, default every id of the server's
datastore, in turn), ``--concurrency`` at a time, after ``--warmup`` untimed ones (sent as many at a time, so the
server's thread pool and memory arenas are set up before memory is first measured). Reports failed requests (any
status but 200, or a transport error), latency p50/p95/p99/max as the client sees it (queueing included: with 8 at
a time on 2 cores most of a request's time is waiting for the others), the service time one at a time
(``--serial`` requests alone), throughput, and with ``--pid`` the server's resident memory before, after and at
its peak (``VmHWM``), so growth over the run is measured. Exits 1 when a request failed or memory grew more
than ``--max_growth_mb``. Bounded: every request has a timeout; the script ends by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

__all__ = ["run", "main"]


def _rss_mb(pid: int | None) -> dict[str, float] | None:
    if pid is None:
        return None
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return {"rss_mb": round(fields["VmRSS"], 1), "peak_mb": round(fields["VmHWM"], 1)}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _one(session: requests.Session, url: str, timeout: float) -> tuple[float, str | None]:
    start = time.perf_counter()
    try:
        r = session.post(url, timeout=timeout)
        if "output=image" in url:
            ok = r.status_code == 200 and r.headers.get("content-type") == "image/png" and len(r.content) > 0
        else:
            ok = r.status_code == 200 and "label" in r.json()
        error = None if ok else f"HTTP {r.status_code}: {r.text[:200]}"
    except (requests.RequestException, ValueError) as e:
        error = f"{type(e).__name__}: {e}"
    return (time.perf_counter() - start) * 1000, error


def _images(base: str) -> list[str]:
    r = requests.get(f"{base}/datastore/", params={"output": "all"}, timeout=30)
    r.raise_for_status()
    return sorted(r.json().get("objects", {}))


def run(url: str, model: str, images: list[str] | None = None, n_requests: int = 200, concurrency: int = 8,
        warmup: int = 16, serial: int = 20, pid: int | None = None, output: str = "json",
        timeout: float = 60.0) -> dict:
    """The load test; returns the figures (see the module docstring)."""
    base = url.rstrip("/")
    images = images or _images(base)
    if not images:
        raise ValueError(f"{base}: the datastore holds no image; pass --images or start the server on a folder")
    urls = [f"{base}/infer/{model}?image={images[i % len(images)]}&output={output}" for i in range(n_requests)]
    local = __import__("threading").local()

    def call(u: str) -> tuple[float, str | None]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return _one(local.session, u, timeout)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:  # at full concurrency: thread pools, allocator arenas
        list(pool.map(call, [urls[i % len(urls)] for i in range(warmup)]))
    serial_ms = [call(u)[0] for u in urls[:serial]]
    before = _rss_mb(pid)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(call, urls))
    wall = time.perf_counter() - start
    after = _rss_mb(pid)
    latencies = [ms for ms, _ in results]
    errors = [e for _, e in results if e]
    out = {
        "url": base, "model": model, "output": output, "images": len(images), "requests": n_requests,
        "concurrency": concurrency, "failed": len(errors), "errors": errors[:5],
        "latency_ms": {"p50": round(_percentile(latencies, 0.5), 1), "p95": round(_percentile(latencies, 0.95), 1),
                       "p99": round(_percentile(latencies, 0.99), 1), "max": round(max(latencies), 1),
                       "mean": round(statistics.fmean(latencies), 1)},
        "serial_ms": None if not serial_ms else {"p50": round(_percentile(serial_ms, 0.5), 1),
                                                 "p95": round(_percentile(serial_ms, 0.95), 1), "n": len(serial_ms)},
        "throughput_rps": round(n_requests / wall, 2), "wall_s": round(wall, 2),
        "memory": None if before is None else {"before": before, "after": after,
                                               "growth_mb": round(after["rss_mb"] - before["rss_mb"], 1)},
    }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--model", default="pneumonia_xray")
    p.add_argument("--images", default=None, help="comma-separated image ids (default: the server's datastore)")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--warmup", type=int, default=16, help="untimed requests first, --concurrency at a time")
    p.add_argument("--serial", type=int, default=20, help="requests sent one at a time first (service time)")
    p.add_argument("--output", default="json", choices=("json", "image"), help="image: with the Grad-CAM overlay")
    p.add_argument("--pid", type=int, default=None, help="the server's process id (memory figures)")
    p.add_argument("--max_growth_mb", type=float, default=200.0)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args(argv)
    try:
        figures = run(args.url, args.model, args.images.split(",") if args.images else None, args.requests,
                      args.concurrency, args.warmup, args.serial, args.pid, args.output, args.timeout)
    except (requests.RequestException, ValueError, OSError) as e:
        print(f"error: {args.url}: {type(e).__name__}: {str(e).splitlines()[0]}. Start the server first "
              f"(python -m medbundle.serving.label_app --studies <folder>).", file=sys.stderr)
        return 2
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        target = Path(args.json)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, target)
    growth = (figures["memory"] or {}).get("growth_mb", 0.0)
    return 1 if figures["failed"] or growth > args.max_growth_mb else 0


if __name__ == "__main__":
    sys.exit(main())
