"""Where a burst's time goes in faro run's delivery: py-spy on ``controller_throughput``'s client.

Usage: python benchmarks/profile_run.py [--variant faro-run] [--events 50000] [--gil]
       [--raw PATH]

Runs one ``controller_throughput`` burst exactly as ``bench_controller.py`` does (the simulator
parks the client's watch, creates ``--events`` ~1 KB ConfigMaps and releases them at once), with
the client (``clients.py VARIANT throughput``, ``faro-run`` by default: the JSON export, metrics
and the log lines ``faro run`` adds) started under ``py-spy record`` (``pip install py-spy``;
``--gil``: only samples holding the GIL, that is CPU work). Prints the events/s, then the share
of the worker threads' samples each function takes (inclusive), the functions of faro, logging
and the export first. docs/benchmarks.md ("Profile of faro run") shows its output before and
after the batched writes.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import orjson  # noqa: E402
from bench_controller import CLIENTS, THROUGHPUT_BUDGET, _kill, _wait_held  # noqa: E402
from bench_informer import BenchError, SimProcess  # noqa: E402

_LINE = re.compile(r":\d+\)")


def breakdown(raw: Path, top: int = 25) -> list[tuple[float, str]]:
    """The share of the worker threads' samples in each function (inclusive), largest first."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any("Delivery._work" in frame for frame in frames):
            continue
        total += int(count)
        for name in {_LINE.sub(")", frame) for frame in frames}:
            inclusive[name] += int(count)
    shown = [(name, count) for name, count in inclusive.most_common()
             if re.search(r"faro/|logging/|export|orjson", name)][:top]
    return [(100.0 * count / max(1, total), name) for name, count in shown]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="faro-run")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--gil", action="store_true", help="sample only the GIL's holder")
    parser.add_argument("--native", action="store_true",
                        help="sample C frames too (the garbage collector, orjson)")
    parser.add_argument("--raw", help="keep py-spy's raw (collapsed) stacks here")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp, SimProcess(history_size=args.events + 1000) as sim:
        raw = Path(args.raw) if args.raw else Path(tmp) / "raw.txt"
        sim.command("reset")
        sim.command("hold")
        command = [spy, "record", "-r", "500", "--format", "raw", "-o", str(raw),
                   *(["--gil"] if args.gil else []), *(["--native"] if args.native else []),
                   "--", sys.executable, str(CLIENTS),
                   args.variant, "throughput", "--kubeconfig", sim.kubeconfig,
                   "--count", str(args.events), "--budget", str(THROUGHPUT_BUDGET)]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            if not _wait_held(sim, proc, args.variant):
                raise BenchError(f"{args.variant} exited: {proc.communicate()[1]}")
            sim.command(f"burst {args.events}")
            released = sim.command("release")["at"]
            out, err = proc.communicate(timeout=120 + THROUGHPUT_BUDGET)
        finally:
            _kill(proc)
        # py-spy writes its own lines too: the client's result is the last JSON line.
        found = [line for line in out.splitlines() if line.startswith("{")]
        if not found:
            raise BenchError(f"{args.variant} printed no result: {out}{err}")
        result = orjson.loads(found[-1])
        rate = result["events"] / (result["last_wall"] - released)
        print(f"{args.variant}: {result['events']} events, {rate:,.0f} events/s "
              f"(release to last handler call{', capped' if result.get('capped') else ''})")
        for share, name in breakdown(raw):
            print(f"{share:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
