"""Traffic for the runner tests, in a process of its own so the test's own work cannot delay
it: `python -m tests.runners.load users|probe URL KEY OUT STOPFILE`.

users: 4 concurrent callers of churn, single rows. probe: GET /healthz every 50 ms. Runs until
STOPFILE exists (at most 10 minutes), then writes [[started_at, seconds, ok], ...] to OUT.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import httpx

ROW = {
    "tenure_months": 3, "monthly_charges": 99.5, "support_calls": 4, "age": 31,
    "plan": "premium", "contract": "monthly", "region": "north",
}  # fmt: skip
LIMIT_S = 600


async def main(mode: str, url: str, key: str, out: Path, stop: Path) -> None:
    samples: list[tuple[float, float, str]] = []
    deadline = time.monotonic() + LIMIT_S

    def going() -> bool:
        return not stop.exists() and time.monotonic() < deadline

    async def user(client: httpx.AsyncClient) -> None:
        while going():
            at, start = time.time(), time.perf_counter()
            try:
                r = await client.post("/v1/models/churn/predict", json={"rows": [ROW]})
                ok = "" if r.status_code == 200 else f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as exc:
                ok = repr(exc)
            samples.append((at, time.perf_counter() - start, ok))

    async def probe(client: httpx.AsyncClient) -> None:
        while going():
            at, start = time.time(), time.perf_counter()
            try:
                r = await client.get("/healthz")
                ok = "" if r.status_code == 200 else str(r.status_code)
            except httpx.HTTPError as exc:
                ok = repr(exc)
            samples.append((at, time.perf_counter() - start, ok))
            await asyncio.sleep(0.05)

    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
        await client.get("/healthz")  # the connection is set up before anything is timed
        if mode == "users":
            await asyncio.gather(*(user(client) for _ in range(4)))
        else:
            await probe(client)
    out.write_text(json.dumps(samples))


if __name__ == "__main__":
    mode, url, key, out, stop = sys.argv[1:6]
    asyncio.run(main(mode, url, key, Path(out), Path(stop)))
