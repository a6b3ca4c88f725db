"""Fan-out measured with wsgen's own generator (bench/fanout.mjs), for wsgen and the peers.

    .venv/bin/python bench/fanout.py        # wsgen, bun-hono, node-hono, starlette-naive
    .venv/bin/python bench/fanout.py --targets wsgen --repeat 3 --msgs 1000

The harness's generator is the limit of its fan-out scenario for wsgen (it marks the
figure †). This runs the same scenario (one room, 1000 subscribers, a publisher, at
most 20 messages in flight) with a generator whose receive side costs a fraction of
it, so that the figure is the server's. Each run gets a freshly started server pinned
to CPU 1 and the generator pinned to CPU 0, as in the harness; wsgen runs with its full
behaviour (JWT, participants, every message committed before it is sent). Raw results
are appended to ``bench/results/<date>-fanout-own.json``; the table shows medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # bench/run.py: wsgen's start and stop, the harness's location

GENERATOR = run.ROOT / "bench" / "fanout.mjs"
ROOM = "fanout-own-room"


def load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("harness_bench", run.HARNESS / "bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generate(url: str, pid: int, msgs: int, secret: str | None) -> dict[str, Any]:
    command = ["taskset", "-c", "0", "node", str(GENERATOR), "--url", url, "--room", ROOM,
               "--server-pid", str(pid), "--msgs", str(msgs)]  # fmt: skip
    if secret:
        command += ["--jwt-secret", secret]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        return {"error": out.stderr.strip()[-500:] or f"exit {out.returncode}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_wsgen(msgs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wsgen-bench-") as data:
        proc = run.start_wsgen(Path(data))
        try:
            plan = subprocess.run(
                ["node", str(GENERATOR), "--print-plan", "--room", ROOM],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            subprocess.run(
                [sys.executable, str(run.ROOT / "bench" / "create_rooms.py"),
                 "--url", f"http://127.0.0.1:{run.PORT}", "--api-key", run.API_KEY],
                input=plan, text=True, check=True,
            )  # fmt: skip
            url = f"ws://127.0.0.1:{run.PORT}/ws/comms/chat-rooms/{{room}}"
            return generate(url, proc.pid, msgs, run.SECRET)
        finally:
            run.stop(proc)


def run_peer(harness: ModuleType, name: str, msgs: int) -> dict[str, Any]:
    proc = harness.start_server(name)
    try:
        url = harness.PLAIN_URL.replace("{port}", str(harness.TARGETS[name]["port"]))
        return generate(url, proc.pid, msgs, None)  # the peers take the user id as token
    finally:
        harness.stop_server(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="wsgen,bun-hono,node-hono,starlette-naive")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--msgs", type=int, default=1000, help="messages per run (harness: 200)")
    parser.add_argument("--results", type=Path, default=run.RESULTS)
    args = parser.parse_args()

    run.prepare_harness(run.ROOT.parent / "shared" / "bench")
    harness = load_harness()
    args.results.mkdir(parents=True, exist_ok=True)
    run.RESULTS = args.results.resolve()
    store = args.results / f"{dt.date.today().isoformat()}-fanout-own.json"
    records = json.loads(store.read_text()) if store.exists() else []
    figures: dict[str, list[dict[str, Any]]] = {}
    for _ in range(args.repeat):
        for target in args.targets.split(","):
            run.log(f"fanout (own generator): {target}")
            if target == "wsgen":
                result = run_wsgen(args.msgs)
            else:
                result = run_peer(harness, target, args.msgs)
            run.log(json.dumps(result))
            records.append({"target": target, "result": result})
            if "error" not in result:
                figures.setdefault(target, []).append(result)
    store.write_text(json.dumps(records, indent=1) + "\n")

    print(
        "| target | runs | fan-out msg/s | p50 ms | p99 ms | delivered "
        "| server CPU % | generator CPU % |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for target, results in figures.items():

        def median(key: str, runs: list[dict[str, Any]] = results) -> float:
            return statistics.median(r[key] for r in runs)

        print(
            f"| {target} | {len(results)} | {median('msgs_per_s'):,.0f} | {median('p50_ms'):.1f} "
            f"| {median('p99_ms'):.1f} | {median('delivered_ratio'):.2%} "
            f"| {median('server_cpu_pct'):.0f} | {median('loadgen_cpu_pct'):.0f} |"
        )


if __name__ == "__main__":
    main()
