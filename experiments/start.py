"""The shipped start policy of the replication family: the tiny model's maze warm start, trained on a split that
holds no held-out maze of the family (its test mazes at every size, the unseen 9x9 and 11x11 included) nor of
H11's confirmatory test, and committed in assets/ so that every clone starts from the same weights.

    python -m experiments.start build      # train it (1,200 SFT steps, one thread) into assets/tiny-maze-start/
    python -m experiments.start check      # its fingerprint against the one its warm_start.json records

The split: make_mazes(train_sizes=(5, 7), n_train={5: 150, 7: 10000}, test_sizes=(5, 7, 9, 11), split seed 0)
with the held-out counts of H11's test, which contain the family's (the test split is generated first and each
size's mazes are a prefix of a longer list, and make_mazes never puts a test maze in train). The train mazes are
therefore the primary family's own train split (the same maze set hash), so the runs train on what the start was
warm-started on and evaluate on mazes it never saw; tests/test_start.py checks that by layout. The recipe is
infra/tiny.py's load_or_train_tiny with train.py's defaults (seed 0, 1,200 steps, batch 32, lr 2e-3).
"""
import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START = os.path.join("assets", "tiny-maze-start")  # relative to ROOT, as the grids' paths are
BUILD_COMMAND = "OMP_NUM_THREADS=1 python -m experiments.start build"
SPLIT = dict(train_sizes=(5, 7), n_train={5: 150, 7: 10000}, test_sizes=(5, 7, 9, 11), seed=0)
HELD_OUT = {5: 30, 7: 200, 9: 600, 11: 240}  # H11's test; the family's (30, 200, 300, 120) is its prefix


def start_split(n_test=None):
    """make_mazes' DatasetDict of the start's split: train = the start's (and the family's) train mazes."""
    from mazes import make_mazes

    return make_mazes(n_test=dict(n_test or HELD_OUT), **SPLIT)


def start_examples():
    """The (compact prompt, reference answer) pairs the start imitates, as train.py builds them for the tiny model."""
    from mazes import format_prompt

    return [(format_prompt(row["maze"], "compact"), row["solution"]) for row in start_split()["train"]]


def weights_fingerprint(folder):
    """The identity of a model folder's weights: the sha256 of model.safetensors and the sum of |w| over its
    tensors (float64), which tells a start policy rebuilt on another CPU (same sum to rounding) from another one."""
    from safetensors import safe_open

    path = os.path.join(folder, "model.safetensors")
    with open(path, "rb") as f:
        sha256 = hashlib.sha256(f.read()).hexdigest()
    abs_sum = 0.0
    with safe_open(path, "pt") as weights:
        for name in weights.keys():
            abs_sum += weights.get_tensor(name).double().abs().sum().item()
    return dict(sha256=sha256, abs_sum=abs_sum)


def same_start(recorded, here, rtol=1e-5):
    """Whether a recorded start_weights fingerprint names the weights fingerprinted here: the same file, or the
    same sum of |w| to rtol (a warm start rebuilt by the same code and seed on a CPU that rounds differently)."""
    if not recorded:
        return False
    return recorded["sha256"] == here["sha256"] or abs(recorded["abs_sum"] - here["abs_sum"]) <= rtol * here["abs_sum"]


def build(out=START, threads=1):
    """Train the start on the split's train mazes and write it to `out` (relative to ROOT) with its fingerprint,
    the command and the machine in warm_start.json. Returns the fingerprint."""
    import torch

    from infra.tiny import SETTINGS_FILE, load_or_train_tiny

    torch.set_num_threads(threads)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        path = load_or_train_tiny(tmp, start_examples(), seed=0, steps=1200, progress=False, name="start")
        fingerprint = weights_fingerprint(path)
        with open(os.path.join(path, SETTINGS_FILE)) as f:
            info = json.load(f)
        info.update(fingerprint=fingerprint, command=BUILD_COMMAND, build_seconds=round(time.time() - started, 1),
                    machine=dict(cpu=_cpu_name(), threads=threads, torch=torch.__version__,
                                 python=platform.python_version()),
                    split=dict(SPLIT, n_test=HELD_OUT))
        with open(os.path.join(path, SETTINGS_FILE), "w") as f:
            json.dump(info, f, indent=2)
        target = os.path.join(ROOT, out)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(path, target)
    return fingerprint


def recorded_fingerprint(folder=START):
    """The fingerprint a shipped start's warm_start.json records."""
    with open(os.path.join(ROOT, folder, "warm_start.json")) as f:
        return json.load(f)["fingerprint"]


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("build", "check"))
    parser.add_argument("--out", default=START)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "build":
        fingerprint = build(args.out, args.threads)
        print(f"{args.out}: sha256 {fingerprint['sha256']}, sum of |w| {fingerprint['abs_sum']:.6f}")
        return 0
    here, recorded = weights_fingerprint(os.path.join(ROOT, args.out)), recorded_fingerprint(args.out)
    print(f"{args.out}: sha256 {here['sha256']}, sum of |w| {here['abs_sum']:.6f} "
          f"({'as recorded' if here == recorded else f'recorded: {recorded}'})")
    return 0 if here == recorded else 1


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    sys.exit(main())
