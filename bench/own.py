"""wsgen and the peers measured with wsgen's own generator (bench/generator.mjs).

    .venv/bin/python bench/own.py        # fanout, connections and ping: wsgen and three peers
    .venv/bin/python bench/own.py --targets wsgen --scenarios connections --repeat 3

Where the harness's generator is the limit, or close to it, this measures the same
scenarios with a generator whose client side costs a fraction of it, so that the
figure is the server's:

- fanout: one room, 1000 subscribers, a publisher, at most 20 messages in flight;
- connections: 5000 handshakes in rooms of 10, 200 in flight, tokens signed before
  the clock starts;
- ping: 100 clients, each alone in its room, in closed loop for 10 s.

Each run gets a freshly started server pinned to CPU 1 and the generator pinned to CPU
0, as in the harness; wsgen runs with its full behaviour (JWT, participants, every
message committed before it is sent). Raw results are appended to
``bench/results/own/<date>.json`` (out of the harness report's way: it reads every
``*.json`` of ``bench/results`` as its own records); the tables show medians.
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

GENERATOR = run.ROOT / "bench" / "generator.mjs"
ROOM = "own-room"
COLUMNS = {
    "fanout": [("fan-out msg/s", "msgs_per_s", "{:,.0f}"), ("p50 ms", "p50_ms", "{:.1f}"),
               ("p99 ms", "p99_ms", "{:.1f}"), ("delivered", "delivered_ratio", "{:.2%}")],
    "connections": [("handshakes/s", "handshakes_per_s", "{:,.0f}"),
                    ("KiB/conn", "rss_kib_per_conn", "{:.1f}")],
    "ping": [("round trips/s", "round_trips_per_s", "{:,.0f}"), ("p50 ms", "p50_ms", "{:.2f}"),
             ("p99 ms", "p99_ms", "{:.2f}")],
}  # fmt: skip


def load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("harness_bench", run.HARNESS / "bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generate(scenario: str, url: str, pid: int, msgs: int, secret: str | None) -> dict[str, Any]:
    command = ["taskset", "-c", "0", "node", str(GENERATOR), "--scenario", scenario, "--url",
               url, "--room", ROOM, "--server-pid", str(pid), "--msgs", str(msgs)]  # fmt: skip
    if secret:
        command += ["--jwt-secret", secret]
    out = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        return {"error": out.stderr.strip()[-500:] or f"exit {out.returncode}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_wsgen(scenario: str, msgs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wsgen-bench-") as data:
        proc = run.start_wsgen(Path(data))
        try:
            plan = subprocess.run(
                ["node", str(GENERATOR), "--print-plan", "--scenario", scenario, "--room", ROOM],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            subprocess.run(
                [sys.executable, str(run.ROOT / "bench" / "create_rooms.py"),
                 "--url", f"http://127.0.0.1:{run.PORT}", "--api-key", run.API_KEY],
                input=plan, text=True, check=True,
            )  # fmt: skip
            url = f"ws://127.0.0.1:{run.PORT}/ws/comms/chat-rooms/{{room}}"
            return generate(scenario, url, proc.pid, msgs, run.SECRET)
        finally:
            run.stop(proc)


def run_peer(harness: ModuleType, name: str, scenario: str, msgs: int) -> dict[str, Any]:
    proc = harness.start_server(name)
    try:
        url = harness.PLAIN_URL.replace("{port}", str(harness.TARGETS[name]["port"]))
        # The peers take the user id as the token.
        return generate(scenario, url, proc.pid, msgs, None)
    finally:
        harness.stop_server(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default="wsgen,bun-hono,node-hono,starlette-naive")
    parser.add_argument("--scenarios", default="fanout,connections,ping")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--msgs", type=int, default=1000, help="fan-out messages (harness: 200)")
    parser.add_argument("--results", type=Path, default=run.RESULTS)
    args = parser.parse_args()

    run.prepare_harness(run.ROOT.parent / "shared" / "bench")
    harness = load_harness()
    args.results.mkdir(parents=True, exist_ok=True)
    run.RESULTS = args.results.resolve()
    store = args.results / "own" / f"{dt.date.today().isoformat()}.json"
    store.parent.mkdir(exist_ok=True)
    records = json.loads(store.read_text()) if store.exists() else []
    figures: dict[tuple[str, str], list[dict[str, Any]]] = {}
    scenarios = args.scenarios.split(",")
    for _ in range(args.repeat):
        for scenario in scenarios:
            for target in args.targets.split(","):
                run.log(f"{scenario} (own generator): {target}")
                if target == "wsgen":
                    result = run_wsgen(scenario, args.msgs)
                else:
                    result = run_peer(harness, target, scenario, args.msgs)
                run.log(json.dumps(result))
                records.append({"target": target, "scenario": scenario, "result": result})
                if "error" not in result:
                    figures.setdefault((scenario, target), []).append(result)
    store.write_text(json.dumps(records, indent=1) + "\n")

    for scenario in scenarios:
        columns = COLUMNS[scenario]
        print(f"\n{scenario}, own generator:\n")
        print(
            "| target | runs | "
            + " | ".join(c[0] for c in columns)
            + " | server CPU % | generator CPU % |"
        )
        print("|---|---:|" + "---:|" * (len(columns) + 2))
        for (row_scenario, target), results in figures.items():
            if row_scenario != scenario:
                continue
            cells = [
                fmt.format(statistics.median(r[key] for r in results)) for _, key, fmt in columns
            ]
            cpu = [
                statistics.median(r[key] for r in results)
                for key in ("server_cpu_pct", "loadgen_cpu_pct")
            ]
            print(
                f"| {target} | {len(results)} | "
                + " | ".join(cells)
                + f" | {cpu[0]:.0f} | {cpu[1]:.0f} |"
            )


if __name__ == "__main__":
    main()
