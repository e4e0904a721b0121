"""Start-up time of the commands an operator runs by hand: whole processes, side by side.

    python tests/bench/bench_startup.py [--runs 10] [--root DIR ...]

Each command runs `--runs` times as a fresh `python -m daemon ...` process (interpreter
start included) over a small config and store; the figures are the median wall time and
the CPU time (user + system) each process used, which a loaded machine inflates less, with
the load average printed beside them. Each `--root` is a source tree to time (default: this
one); pass an older checkout too to compare before and after in one run.

The modules' bytecode is cached (in a temporary PYTHONPYCACHEPREFIX, written by one untimed
run of each command) even where PYTHONDONTWRITEBYTECODE is set: an installed trendfinder
has its .pyc files (pip writes them), so compiling the sources at every start is not what
a user waits for. Run it with the interpreter of a `pip install .` virtualenv to leave out
the editable install's import hook too (the source tree still comes first on the path).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMMANDS = (["--help"], ["status"], ["service", "print"])
CREATE_STORE = (
    "import sys, pathlib; from core.store import Store; "
    "Store.open(pathlib.Path(sys.argv[1])).close()"
)


def timed(
    root: Path, command: list[str], config: Path, runs: int, cache: Path
) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(root), "TRENDFINDER_CONFIG": str(config)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    times, cpu = [], []
    for run in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "daemon", *command],
            env=env,
            cwd=root,
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=120,
        )
        if run == 0:
            continue  # the untimed run that writes the bytecode cache
        times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--root", action="append", type=Path)
    args = parser.parse_args()
    roots = args.root or [REPO]
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "config.yaml"
        config.write_text(
            f"storage: {{path: {folder}/state}}\n"
            "sources: [{name: a, kind: feed, url: 'http://127.0.0.1:9/feed'}]\n"
            # A schedule and a timezone, as the shipped config has: validating the schedule
            # imports APScheduler's cron trigger.
            "digests: [{name: daily, focus: news, schedule: '0 7 * * *', timezone: UTC,\n"
            "           deliver: [{kind: file}]}]\n"
        )
        # The store exists, as it does on a running install (`status` only reads one).
        subprocess.run(
            [sys.executable, "-c", CREATE_STORE, f"{folder}/state"],
            env={**os.environ, "PYTHONPATH": str(roots[0])},
            check=True,
            timeout=120,
        )
        for command in COMMANDS:
            for index, root in enumerate(roots):
                cache = Path(folder) / f"pycache-{index}"
                wall, cpu = timed(root, command, config, args.runs, cache)
                load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
                print(
                    f"trendfinder {' '.join(command):<14} {wall:6.3f} s wall, {cpu:6.3f} s CPU "
                    f"(medians of {args.runs})  ({root})  load average {load}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
