"""The RL step of this checkout against an earlier commit and TRL, alternating, on bench.py's workload.

    PYTHONPATH=.trl python benchmarks/alternate.py --before=HEAD~1 --rounds=3     # from the repository root

On a machine whose speed drifts from minute to minute (a shared VM), a before/after pair measured apart
compares the minutes, not the code. This runs `bench.run_workload` (train.py, 2 warm-up + 8 timed steps) on
this checkout and on `--before` (exported with `git archive` to a temporary folder), then TRL's GRPOTrainer
(benchmarks/trl_grpo.py, when trl is importable), in turn, `--rounds` times, and prints each round's s/step
and its ratios: ours / before and ours / TRL are then taken within the same minute. The last line is JSON.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import bench  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", default="HEAD~1", help="the git commit to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=bench.DEFAULT["threads"])
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.threads < 1:
        parser.error("--rounds and --threads must be >= 1")
    with_trl = importlib.util.find_spec("trl") is not None
    rounds = []
    with tempfile.TemporaryDirectory() as before:
        archive = subprocess.run(["git", "archive", args.before], cwd=ROOT, capture_output=True)
        if archive.returncode:
            parser.error(f"--before={args.before}: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", before], input=archive.stdout, check=True)
        for index in range(args.rounds):
            figures = {}
            for name, root in (("ours", ROOT), ("before", before)):
                bench.ROOT = root  # run_workload runs train.py from bench.ROOT
                figures[name] = bench.run_workload(bench.SHIPPED, 8, 2, threads=args.threads)
            bench.ROOT = ROOT
            if with_trl:
                figures["trl"] = bench.run_trl(bench.SHIPPED, 8, 2, args.threads)
            line = "  ".join(f"{name} {value['seconds_per_step']:.3f} s/step" for name, value in figures.items())
            ratios = {"ours/before": figures["ours"]["seconds_per_step"] / figures["before"]["seconds_per_step"]}
            if with_trl:
                ratios["ours/trl"] = figures["ours"]["seconds_per_step"] / figures["trl"]["seconds_per_step"]
                ratios["before/trl"] = figures["before"]["seconds_per_step"] / figures["trl"]["seconds_per_step"]
            print(f"round {index + 1}: {line}  " + "  ".join(f"{k} {v:.2f}" for k, v in ratios.items()), flush=True)
            rounds.append(dict(figures, ratios=ratios))
    print(json.dumps({"before": args.before, "threads": args.threads, "rounds": rounds}))
    return rounds


if __name__ == "__main__":
    main()
