"""Validation against the reference profile: its cost per request, checks on vs off, side by side.

One project holds the same 14-feature model (10 numeric, 4 categorical features) under two
names: `checked` keeps the default validation policy, `unchecked` has `--validation allow`
(the profile checks are skipped). Both run in the same process, so the difference between
them is the cost of the checks:

1. in process: single-row `Pipeline.predict` calls, alternating blocks of each model,
   median per call (the issue's target: under 50 µs added to a single 14-feature row);
2. over HTTP: one `pointsman serve`, wrk at concurrency 64 (and 1), alternating between the
   two models' endpoints, median throughput over the rounds (target: under 10 % lost).

    .venv/bin/python bench/validation_overhead.py [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from harness import VENV_BIN, WRK_SCRIPT, Server, free_port, run_wrk
from harness import in_process as harness_in_process
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline as SkPipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = [f"x{i}" for i in range(10)]
CATEGORICAL = ["plan", "region", "channel", "segment"]
MAX_ADDED_US = 50.0
MIN_RATIO = 0.90


def make_model(folder: Path) -> tuple[Path, Path, dict[str, Any]]:
    """A 14-feature logistic regression, its training CSV and one typical row."""
    rng = np.random.default_rng(7)
    n = 3000
    data: dict[str, Any] = {name: rng.normal(i, 1 + i / 5, n) for i, name in enumerate(NUMERIC)}
    data["plan"] = rng.choice(["basic", "standard", "premium"], n)
    data["region"] = rng.choice(["north", "south", "east", "west"], n)
    data["channel"] = rng.choice(["web", "store", "phone"], n)
    data["segment"] = rng.choice(["a", "b", "c", "d", "e"], n)
    frame = pd.DataFrame(data)
    target = (frame["x0"] + frame["x3"] / 2 + (frame["plan"] == "premium") > 1.2).astype(int)
    model = SkPipeline(
        [
            (
                "pre",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), NUMERIC),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                    ]
                ),
            ),
            ("clf", LogisticRegression(max_iter=500)),
        ]
    ).fit(frame, target)
    path = folder / "wide.joblib"
    joblib.dump(model, path)
    csv = folder / "wide_train.csv"
    frame.assign(y=target).to_csv(csv, index=False)
    row = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in frame.iloc[5].items()}
    return path, csv, row


def pointsman(project: Path, *args: str) -> None:
    argv = [str(VENV_BIN / "pointsman"), "--project", str(project), *args]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def make_project(folder: Path) -> tuple[Path, dict[str, Any]]:
    model, csv, row = make_model(folder)
    project = folder / "project"
    pointsman(folder, "init", str(project))
    for name in ("checked", "unchecked"):
        pointsman(
            project, "register", name, str(model), "--training-data", str(csv), "--target", "y"
        )
        pointsman(project, "deploy", name, "1")
    pointsman(project, "route", "unchecked", "--validation", "allow")
    return project, row


# -- in process -----------------------------------------------------------------------------
def in_process(project: Path, row: dict[str, Any], rounds: int, calls: int) -> dict[str, Any]:
    from pointsman.protocols import Payload, native
    from pointsman.settings import load_settings
    from pointsman.types import Outcome

    opened = contextlib.ExitStack()
    pipeline = opened.enter_context(harness_in_process(load_settings(project)))
    catalog = pipeline.catalog
    body = json.dumps({"rows": [row]}).encode()

    async def block(model: str) -> float:
        target = catalog.target(model)
        start = time.perf_counter()
        for _ in range(calls):
            payload = Payload(native.CODEC, body, {})
            answer = await pipeline.predict(target, payload, Outcome("bench"))
        elapsed = (time.perf_counter() - start) / calls
        assert not answer.findings, answer.findings  # a typical row: nothing to report
        return elapsed * 1e6

    def checks_only(model: str) -> float:
        """The added work alone: decode is shared, so time the validation step by itself."""
        target = catalog.target(model)
        route = catalog.get_route(model)
        frame = native.decode(body, target.signature)
        rules = route.policy.validation
        n = calls * 10
        start = time.perf_counter()
        for _ in range(n):
            pipeline._validate(target.version, frame, rules, route)
        return (time.perf_counter() - start) / n * 1e6

    async def run() -> dict[str, list[float]]:
        times: dict[str, list[float]] = {
            "checked": [], "unchecked": [], "checks_on": [], "checks_off": []
        }  # fmt: skip
        await block("checked")  # warm caches, prepare the checks
        await block("unchecked")
        for i in range(rounds):
            order = ["checked", "unchecked"] if i % 2 == 0 else ["unchecked", "checked"]
            for model in order:
                times[model].append(await block(model))
            times["checks_on"].append(checks_only("checked"))
            times["checks_off"].append(checks_only("unchecked"))
        return times

    try:
        times = asyncio.run(run())
    finally:
        opened.close()
    on, off = statistics.median(times["checked"]), statistics.median(times["unchecked"])
    step_on, step_off = (
        statistics.median(times["checks_on"]),
        statistics.median(times["checks_off"]),
    )
    return {
        "checked_us": on,
        "unchecked_us": off,
        "pipeline_added_us": on - off,
        "added_us": step_on - step_off,
        "validation_step_on_us": step_on,
        "validation_step_off_us": step_off,
        "runs": times,
    }


# -- over HTTP ------------------------------------------------------------------------------
def predict_key(project: Path) -> str:
    """A key for both models: auth stays on, as in production, and costs both sides alike."""
    argv = [str(VENV_BIN / "pointsman"), "--project", str(project), "keys", "create"]
    argv += ["bench", "--scope", "predict:*", "--json"]
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    key: str = json.loads(done.stdout)["key"]
    return key


@dataclass
class Endpoint(Server):
    body: str = ""

    def predict(self) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.key}"}
        request = urllib.request.Request(self.url, self.body.encode(), headers, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer


def over_http(
    project: Path, row: dict[str, Any], args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    port = free_port()
    body = json.dumps({"rows": [row]})
    env = {**os.environ, "POINTSMAN_SERVER_LOG_LEVEL": "warning"}
    argv = [str(VENV_BIN / "pointsman"), "--project", str(project), "serve"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    key = predict_key(project)
    path = "/v1/models/checked/predict"
    server = Endpoint("pointsman", argv, env, path, port, tmp / "serve.log", key, body=body)
    script = tmp / "post.lua"
    script.write_text(WRK_SCRIPT % (key, body))
    results: dict[str, Any] = {}
    try:
        server.start()  # inside the try: a server that never answers is still stopped
        for concurrency in args.concurrency:
            runs: dict[str, list[dict[str, Any]]] = {"checked": [], "unchecked": []}
            for model in ("checked", "unchecked"):  # warm-up, discarded
                url = f"http://127.0.0.1:{port}/v1/models/{model}/predict"
                run_wrk(url, script, concurrency, args.warmup, 1)
            for i in range(args.rounds):
                order = ["checked", "unchecked"] if i % 2 == 0 else ["unchecked", "checked"]
                for model in order:
                    url = f"http://127.0.0.1:{port}/v1/models/{model}/predict"
                    raw = run_wrk(url, script, concurrency, args.duration, 1)
                    runs[model].append(raw)
                    rps = raw["requests"] / (raw["duration_us"] / 1e6)
                    print(
                        f"  conc {concurrency:>2} {model:<9} {rps:7.0f} req/s "
                        f"p50 {raw['p50_us'] / 1000:.2f} ms",
                        file=sys.stderr,
                    )
            results[str(concurrency)] = summarize(runs)
    finally:
        server.stop()
    return results


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    def med(model: str, key: str) -> float:
        values = []
        for raw in runs[model]:
            seconds = raw["duration_us"] / 1e6
            values.append(raw["requests"] / seconds if key == "rps" else raw[key] / 1000)
        return statistics.median(values)

    errors = sum(sum(raw["errors"].values()) for model in runs for raw in runs[model])
    on, off = med("checked", "rps"), med("unchecked", "rps")
    return {
        "checked_rps": on,
        "unchecked_rps": off,
        "ratio": on / off,
        "checked_p50_ms": med("checked", "p50_us"),
        "unchecked_p50_ms": med("unchecked", "p50_us"),
        "errors": errors,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
    p.add_argument("--calls", type=int, default=3000, help="in-process calls per block")
    p.add_argument("--warmup", type=float, default=3.0, help="wrk warm-up seconds")
    p.add_argument("--duration", type=float, default=8.0, help="wrk measured seconds")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    p.add_argument("--json", type=Path, help="also write the results to this JSON file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="pointsman-bench-") as tmp_name:
        tmp = Path(tmp_name)
        project, row = make_project(tmp)
        local = in_process(project, row, max(args.rounds * 2, 5), args.calls)
        http = over_http(project, row, args, tmp)
    added_ok = local["added_us"] < MAX_ADDED_US
    print()
    print("validation against the reference profile, 14 features, single-row native predict")
    blocks = len(local["runs"]["checked"])
    print(
        f"validation step alone (median of {blocks} blocks of {args.calls * 10} calls): "
        f"{local['validation_step_on_us']:.1f} µs checked, "
        f"{local['validation_step_off_us']:.1f} µs allowed: added {local['added_us']:.1f} µs"
    )
    print(
        f"whole in-process predict (median of {blocks} blocks of {args.calls} calls): "
        f"checked {local['checked_us']:.0f} µs, unchecked {local['unchecked_us']:.0f} µs "
        f"(difference {local['pipeline_added_us']:+.0f} µs)"
    )
    ratios_ok = "64" not in http or http["64"]["ratio"] >= MIN_RATIO
    for concurrency, cell in http.items():
        print(
            f"HTTP conc {concurrency:>2} (median of {args.rounds}): checked "
            f"{cell['checked_rps']:.0f} req/s, unchecked {cell['unchecked_rps']:.0f} req/s, "
            f"ratio {cell['ratio']:.3f}; p50 {cell['checked_p50_ms']:.2f} vs "
            f"{cell['unchecked_p50_ms']:.2f} ms; errors {cell['errors']}"
        )
    errors = sum(c["errors"] for c in http.values())
    ok = added_ok and ratios_ok and errors == 0
    print(
        ("PASS" if ok else "FAIL")
        + f" (added < {MAX_ADDED_US:g} µs in process; throughput ratio >= {MIN_RATIO} at "
        "conc 64; no errors)"
    )
    if args.json:
        report = {"benchmark": "validation_overhead", "in_process": local, "http": http, "pass": ok}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
