"""wsgen's benchmark: one command, wsgen and its peers side by side.

    make bench      # every scenario: wsgen, bun-hono, node-hono, starlette-naive
    .venv/bin/python bench/run.py --peers none --scenarios fanout,ping --repeat 3

It drives the shared harness (``../shared/bench``: a Node load generator and five
peer servers), copied into ``bench/.harness`` (git-ignored) because the shared
folder is read-only, and set up on first use (``setup.sh``: pinned packages under
``~/.cache/wsgen-bench``). For each scenario a fresh ``wsgen serve`` is started
pinned to CPU 1 with the full production behaviour on (JWT auth, participant
check, validation, every chat message committed to SQLite before it is sent) and
the harness's ``external`` target measures it with the load generator on CPU 0;
the rooms a scenario needs are created through the HTTP API
(``bench/create_rooms.py``). Then the peers run the same scenarios, the harness
prints the table and ``bench/plot.py`` draws ``bench/results/<date>.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "bench" / ".harness"
RESULTS = ROOT / "bench" / "results"
SECRET = "bench-jwt-secret-not-for-production"
API_KEY = "bench-api-key-not-for-production"
PORT = 8765


def log(*parts: object) -> None:
    print("[wsgen-bench]", *parts, file=sys.stderr, flush=True)


def prepare_harness(source: Path) -> None:
    if not (HARNESS / "bench.py").exists():
        if not (source / "bench.py").exists():
            sys.exit(f"no harness at {source}; pass --harness DIR")
        shutil.copytree(source, HARNESS, ignore=shutil.ignore_patterns("results", "node_modules"))
        (HARNESS / "results").mkdir(exist_ok=True)
    cache = Path(os.environ.get("WSGEN_BENCH_CACHE", Path.home() / ".cache" / "wsgen-bench"))
    if (
        not (cache / "node" / "node_modules" / "ws").exists()
        or not (HARNESS / "loadgen" / "node_modules").exists()
    ):
        log("setting up the harness (pinned packages, once)")
        subprocess.run(["bash", "setup.sh"], cwd=HARNESS, check=True)


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"wsgen exited with {proc.returncode}; see {RESULTS / '.wsgen.server.log'}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    sys.exit(f"wsgen did not listen on {port} within {timeout} s")


def start_wsgen(data_dir: Path) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WSGEN_")},
        "WSGEN_JWT_SECRET": SECRET,
        "WSGEN_API_KEY": API_KEY,
        "WSGEN_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'bench.db'}",
        "WSGEN_LOG_LEVEL": "WARNING",
        # The harness's pairs and ping scenarios are floods by design.
        "WSGEN_RATE_LIMIT": "100000",
    }
    wsgen = str(Path(sys.executable).with_name("wsgen"))
    log_file = (RESULTS / ".wsgen.server.log").open("ab")
    cpu = os.environ.get("BENCH_SERVER_CPU", "1")
    command = ["taskset", "-c", cpu, wsgen, "serve", "--port", str(PORT), "--root", str(ROOT)]
    proc = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    wait_port(PORT, proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def harness(*args: str) -> None:
    subprocess.run([sys.executable, "bench.py", *args], cwd=HARNESS, check=False)


class Profiler:
    """py-spy attached to the server for one scenario; its raw stacks land in ``bench/results``."""

    def __init__(self, pid: int, scenario: str) -> None:
        self.pid = pid
        py_spy = Path(sys.executable).with_name("py-spy")
        self.output = RESULTS / f".profile-{scenario}.txt"
        self.proc = subprocess.Popen(
            [str(py_spy), "record", "--pid", str(pid), "--rate", "500", "--format", "raw",
             "--nonblocking", "--threads", "--output", str(self.output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def stop(self) -> None:
        ticks = os.sysconf("SC_CLK_TCK")
        for task in sorted(Path(f"/proc/{self.pid}/task").iterdir()):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            seconds = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
            if seconds >= 0.05:
                log(f"thread {task.name}: {seconds:.2f} s of CPU")
        self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        self.proc.wait(timeout=30)
        log(f"profile: {self.output} (summarise: bench/profile.py {self.output})")


def run_wsgen(scenarios: list[str], sizes: list[str], *, profile: bool = False) -> None:
    """One run of each scenario, a fresh server each, as the harness does for peers."""
    setup = (
        f"{sys.executable} {ROOT / 'bench' / 'create_rooms.py'} "
        f"--url http://127.0.0.1:{PORT} --api-key {API_KEY}"
    )
    for scenario in scenarios:
        with tempfile.TemporaryDirectory(prefix="wsgen-bench-") as data:
            proc = start_wsgen(Path(data))
            profiler = Profiler(proc.pid, scenario) if profile else None
            try:
                harness(
                    "run", "external", "--name", "wsgen", "--scenarios", scenario,
                    "--url-template", f"ws://127.0.0.1:{PORT}/ws/comms/chat-rooms/{{room}}",
                    "--jwt-secret", SECRET, "--server-pid", str(proc.pid),
                    "--setup-cmd", setup, "--results", str(RESULTS), *sizes,
                )  # fmt: skip
            finally:
                if profiler is not None:
                    profiler.stop()
                stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--harness", type=Path, default=ROOT.parent / "shared" / "bench")
    parser.add_argument("--scenarios", default="fanout,pairs,connections,ping")
    parser.add_argument("--peers", default="bun-hono,node-hono,starlette-naive",
                        help="comma-separated harness targets, or 'none'")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--results",
        type=Path,
        default=ROOT / "bench" / "results",
        help="where figures, the plot and profiles go (default bench/results)",
    )
    parser.add_argument("--profile", action="store_true",
                        help="py-spy profile of wsgen per scenario (.profile-*)")  # fmt: skip
    parser.add_argument("sizes", nargs="*", help="size options passed to the harness, after --")
    args = parser.parse_args()

    global RESULTS
    RESULTS = args.results.resolve()
    RESULTS.mkdir(parents=True, exist_ok=True)
    prepare_harness(args.harness)
    scenarios = args.scenarios.split(",")
    peers = [] if args.peers == "none" else args.peers.split(",")
    # Rounds (every target once, then again), not one target's runs after another's:
    # a slow spell of the machine then falls on every target, not on one.
    for _ in range(args.repeat):
        run_wsgen(scenarios, args.sizes, profile=args.profile)
        for peer in peers:
            harness(
                "run", peer, "--scenarios", ",".join(scenarios), "--repeat", "1",
                "--results", str(RESULTS), *args.sizes,
            )  # fmt: skip
    today = dt.date.today().isoformat()
    harness("report", "--results", str(RESULTS), "--date", today)
    png = RESULTS / f"{today}.png"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "plot.py"), str(RESULTS), today, str(png)], check=True
    )
    log(f"plot: {png}")


if __name__ == "__main__":
    main()
