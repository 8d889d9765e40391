"""Does sampling oversubscribe the CPU's threads? (issue 26 item 10)

Times ``ddim.generate`` (16 images, 20 DDIM steps, the built-in model, on the CPU) in fresh processes: called from
the main thread as the CLI does, and from a worker thread as the web demo does: as shipped (OpenMP threads wait
passively), with OpenMP's default spinning wait (``OMP_WAIT_POLICY=ACTIVE``), and with one thread; alternating
rounds, so a load that changes during the
run touches every setting alike. Prints a table of median seconds and the ratio to the CLI's default.

    python scripts/bench_threads.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, threading, time
import ddim  # first, as the ddim command imports it: it sets OMP_WAIT_POLICY before PyTorch loads OpenMP
import torch
model = ddim.load("pretrained", device="cpu")
ddim.generate(model, 2, steps=2)  # warm-up
def run():
    started = time.perf_counter()
    ddim.generate(model, 16, steps=20, seed=0)
    return time.perf_counter() - started
if sys.argv[1] == "worker":
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("seconds", run()))
    thread.start(); thread.join()
    seconds = out["seconds"]
else:
    seconds = run()
print(json.dumps({"threads": torch.get_num_threads(), "seconds": seconds}))
"""

SETTINGS = [("main thread (the CLI), as shipped (OMP_WAIT_POLICY=PASSIVE)", "main", {}),
            ("main thread, OMP_WAIT_POLICY=ACTIVE (before ddim 0.4)", "main", {"OMP_WAIT_POLICY": "ACTIVE"}),
            ("main thread, OMP_NUM_THREADS=1", "main", {"OMP_NUM_THREADS": "1"}),
            ("worker thread (the demo), as shipped", "worker", {}),
            ("worker thread, OMP_WAIT_POLICY=ACTIVE", "worker", {"OMP_WAIT_POLICY": "ACTIVE"})]


def measure(where: str, settings: dict[str, str]) -> tuple[int, float]:
    environment = {key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    environment.update(settings)
    result = subprocess.run([sys.executable, "-c", CHILD, where], capture_output=True, text=True, check=True,
                            env=environment)
    record = json.loads(result.stdout.strip().splitlines()[-1])
    return record["threads"], record["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default: 3)")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name, _, _ in SETTINGS}
    counts: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, where, settings in SETTINGS:
            counts[name], seconds = measure(where, settings)
            times[name].append(seconds)
    base = statistics.median(times[SETTINGS[0][0]])
    print(f"CPU cores: {os.cpu_count()}; 16 images, 20 DDIM steps, {args.rounds} alternating rounds\n")
    print("| setting | PyTorch threads | median s | relative to the CLI's default |")
    print("| --- | --- | --- | --- |")
    for name, _, _ in SETTINGS:
        median = statistics.median(times[name])
        print(f"| {name} | {counts[name]} | {median:.2f} | {median / base:.2f}× |")


if __name__ == "__main__":
    main()
