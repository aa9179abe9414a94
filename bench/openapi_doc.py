"""GET /openapi.json: what the document costs per request, with a key (each deployed model's
own and pinned paths) and without (the base document, built once).

The demo project (churn v1 deployed, v2 registered) served in-process through ASGI; the
first request of each kind is timed alone (it builds what later requests reuse), then the
median of `--requests` more. Run it on two checkouts for a side-by-side figure.

    .venv/bin/python bench/openapi_doc.py [--requests 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from harness import make_demo

from pointsman.api.app import build_app
from pointsman.auth import KeyBook
from pointsman.project import open_project
from pointsman.settings import load_settings


async def measure(folder: Path, requests: int) -> dict[str, Any]:
    settings = load_settings(folder)
    with open_project(settings) as project:
        key, _ = KeyBook(project.engine).create(f"bench-{time.time_ns()}", ["admin"], "bench")
    app = build_app(settings)
    out: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for label, headers in (("without_key", {}), ("with_key", {"X-API-Key": key})):
                timings = []
                size = 0
                for _ in range(requests + 1):
                    start = time.perf_counter()
                    answer = await client.get("/openapi.json", headers=headers)
                    timings.append((time.perf_counter() - start) * 1000)
                    answer.raise_for_status()
                    size = len(answer.content)
                out[label] = {
                    "first_ms": round(timings[0], 2),
                    "median_ms": round(statistics.median(timings[1:]), 3),
                    "bytes": size,
                    "paths": len(answer.json()["paths"]),
                }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_demo(Path(tmp) / "demo")
        result = asyncio.run(measure(folder, args.requests))
    result["loadavg"] = os.getloadavg()
    print(f"load average {result['loadavg'][0]:.2f}")
    for label in ("without_key", "with_key"):
        figures = result[label]
        first, median = figures["first_ms"], figures["median_ms"]
        print(
            f"{label:12} first {first:8.2f} ms  median {median:7.3f} ms  "
            f"{figures['bytes']:8d} bytes  {figures['paths']} paths"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
