"""How long the reading commands take to answer, old code against new.

`pointsman --help`, `models`, `versions churn`, `route churn` and `route churn --history`,
each as a fresh process, alternately with the old code (--baseline: a folder holding an
older `pointsman/`) and this checkout's, on one interpreter and one project. Per command it
prints the medians of wall time, CPU time (user + system), peak RSS and the import time
`python -X importtime` reports, and the ratio new/old; it checks that both print the same
bytes. The machine's load average is printed before and after: on a busy machine wall time
waits for a CPU, CPU time much less.

    git archive main pointsman | tar -x -C OLD                 # the old code, once
    .venv/bin/pointsman demo DEMO --no-serve                   # a project with churn
    .venv/bin/python bench/cli_start.py --baseline OLD --project DEMO [--rounds 5]

Both trees are copied into a temporary folder and put first on PYTHONPATH, and each table is
measured twice: `source`, pointsman's own modules compiled at every start (an editable
install run with PYTHONDONTWRITEBYTECODE, as in development and CI), and `bytecode`, both
copies byte-compiled first (an installed wheel). Third-party packages keep their bytecode.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
COMMANDS = (
    ("--help",), ("models",), ("versions", "churn"), ("route", "churn"),
    ("route", "churn", "--history"),
)  # fmt: skip
# What the console script `pointsman` runs.
ENTRY = "import sys; from pointsman.cli.main import main; sys.exit(main())"
COLUMNS = ("wall s", "cpu s", "RSS MB", "import ms")


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    rss_mb: float
    stdout: bytes


def environment(code: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"}
    env["COLUMNS"] = "100"
    env.pop("POINTSMAN_PROJECT", None)
    return env


def run(code: Path, project: Path, args: tuple[str, ...]) -> Run:
    """One command in a fresh process with `code`'s pointsman (run in the project: `-c`
    puts the working folder before PYTHONPATH)."""
    command = [sys.executable, "-c", ENTRY, "--project", str(project), *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            command, env=environment(code), stdout=out, stderr=err, cwd=project
        )
        _, status, usage = os.wait4(process.pid, 0)  # its own CPU time and peak RSS
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed with {code}:\n{err.read().decode()}")
        stdout = out.read()
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout)


def import_ms(code: Path, project: Path, args: tuple[str, ...]) -> float:
    """The sum of `-X importtime`'s top-level cumulative times, in ms."""
    command = [sys.executable, "-X", "importtime", "-c", ENTRY, "--project", str(project), *args]
    done = subprocess.run(
        command, env=environment(code), capture_output=True, text=True, timeout=120, cwd=project
    )
    total = 0
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            _, cumulative, name = line.split("|")
            if not name.startswith("  ") and cumulative.strip().isdigit():
                total += int(cumulative)
    return total / 1000


def table(codes: dict[str, Path], project: Path, rounds: int) -> None:
    print(f"{'command':<24}{'side':<8}" + "".join(f"{c:>10}" for c in COLUMNS))
    for args in COMMANDS:
        runs: dict[str, list[Run]] = {side: [] for side in codes}
        imports: dict[str, list[float]] = {side: [] for side in codes}
        for _ in range(rounds):
            for side, code in codes.items():  # alternately: changes of load hit both alike
                runs[side].append(run(code, project, args))
                imports[side].append(import_ms(code, project, args))
        if runs["old"][0].stdout != runs["new"][0].stdout:
            raise SystemExit(f"{' '.join(args)}: old and new print different output")
        medians = {}
        for side in codes:
            medians[side] = (
                statistics.median(r.wall_s for r in runs[side]),
                statistics.median(r.cpu_s for r in runs[side]),
                statistics.median(r.rss_mb for r in runs[side]),
                statistics.median(imports[side]),
            )
            figures = "".join(f"{v:>10.3f}" for v in medians[side][:2])
            figures += f"{medians[side][2]:>10.1f}{medians[side][3]:>10.0f}"
            print(f"{' '.join(args):<24}{side:<8}{figures}")
        ratios = [n / o for n, o in zip(medians["new"], medians["old"], strict=True)]
        print(f"{'':<24}{'new/old':<8}" + "".join(f"{r:>10.2f}" for r in ratios))


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="Holds the old pointsman/.")
    parser.add_argument("--project", type=Path, required=True, help="A project with churn.")
    parser.add_argument("--rounds", type=int, default=5, help="Runs of each side per command.")
    options = parser.parse_args()
    project = options.project.resolve()
    with tempfile.TemporaryDirectory(prefix="cli-start-") as tmp:
        codes = {}
        for side, tree in (("old", options.baseline.resolve()), ("new", HERE)):
            if not (tree / "pointsman" / "cli" / "main.py").exists():
                raise SystemExit(f"{tree} holds no pointsman package")
            codes[side] = Path(tmp) / side
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(tree / "pointsman", codes[side] / "pointsman", ignore=ignore)
        print(f"{options.rounds} rounds; load average before: {load()}")
        print("\nsource (pointsman's modules compiled at every start)")
        table(codes, project, options.rounds)
        for code in codes.values():
            compileall.compile_dir(code / "pointsman", quiet=1)
        print("\nbytecode (both trees byte-compiled, as an installed wheel)")
        table(codes, project, options.rounds)
        print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()
