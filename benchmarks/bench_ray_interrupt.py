"""``execute --ray`` interrupted while short runs are ending: how often the driver survives.

Each trial starts ``ablationkit execute --ray --jobs 2`` on a fresh toy grid of 18 runs of
0.15 s, waits until three runs have started (so some have ended and others are ending), waits
a random 0-0.4 s more and sends SIGTERM. A trial is bad when the driver exits with anything
but 130 (interrupted) or 0 (done before the signal), prints a failed Ray check, hangs, or
leaves a run's script alive. ``--src`` runs another checkout's code (``OLD/src``), to put a
change's figure beside the one before it on the same machine.

Measured 2026-12-03 (Ray 2.60, two runs of 20 each): ``ray.cancel`` (66d3e8b) 7 and 3 of 20
trials bad, every one "Check failed: ... Tried to complete task that was not pending"; the stop
flag 0 of 20 in three runs.

    python benchmarks/bench_ray_interrupt.py [--trials 20] [--src OLD/src]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOY = """
import os, sys, time
args = dict(a.split("=", 1) for a in sys.argv[1:])
with open("pid-" + os.environ["ABLATIONKIT_RUN_ID"], "w") as f:
    f.write(str(os.getpid()))
time.sleep(float(args.get("sleep", 0)))
print('{"accuracy": 0.9}')
"""

GRID = """{
  "plan": "plan.json", "paper_id": "toy", "project": ".", "style": "hydra",
  "seeds": [0, 1, 2, 3, 4, 5], "baseline": {"sleep": 0.15},
  "mappings": [{"ablation": "Learning rate", "action": "REPLACE",
                "variants": [{"label": "lr=0.01", "overrides": {"lr": 0.01}},
                             {"label": "lr=0.5", "overrides": {"lr": 0.5}}]}]
}"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def trial(cli: str, env: dict[str, str], rng: random.Random) -> str | None:
    """One interrupted execute; what went wrong, or None."""
    project = Path(tempfile.mkdtemp(prefix="ray-interrupt-"))
    (project / "train.py").write_text(TOY, encoding="utf-8")
    (project / "grid.json").write_text(GRID, encoding="utf-8")
    command = f"{sys.executable} train.py {{overrides}}"
    proc = subprocess.Popen(
        [cli, "execute", "grid.json", "--cmd", command, "--ray", "--jobs", "2"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(list(project.glob("pid-*"))) < 3:
        if proc.poll() is not None or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    time.sleep(rng.uniform(0, 0.4))
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return "hung"
    checks = [line for line in err.splitlines() if "Check failed" in line]
    if checks:
        return f"exit {proc.returncode}: " + checks[0].split("Check failed:", 1)[1].strip()[:90]
    if proc.returncode not in (0, 130):
        return f"exit {proc.returncode}"
    time.sleep(2)
    pids = [int(f.read_text()) for f in project.glob("pid-*") if f.read_text()]
    alive = [pid for pid in pids if _alive(pid)]
    return f"{len(alive)} scripts outlived execute" if alive else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--src", help="another checkout's src folder to run instead")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cli = str(Path(sys.executable).parent / "ablationkit")
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = str(Path(args.src).resolve())
    rng = random.Random(args.seed)
    bad = 0
    for number in range(args.trials):
        problem = trial(cli, env, rng)
        if problem:
            bad += 1
            print(f"trial {number}: {problem}", flush=True)
    print(f"{bad} of {args.trials} interrupted trials went wrong ({args.src or 'this checkout'})")


if __name__ == "__main__":
    main()
