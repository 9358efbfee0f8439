"""The lab's one command: a grid's record in, its figures, tables and verdicts out.

    python -m lab.plots experiments/results/long.jsonl   # a grid's figures + tables from its records -> experiments/figures/
    python -m lab.plots experiments/runs/long --compact experiments/results/long.jsonl   # raw run folders -> records
    python -m lab.plots --verdicts experiments/results/long.jsonl experiments/results/tasks.jsonl --write RESULTS.md
    python -m lab.plots out                              # the curves of one train.py out_dir
    python -m lab.plots --advantages-only                # figures 9 and 18 only: no training needed
    python -m lab.plots --estimator-gradients            # what each estimator optimises (exact, Bernoulli policy)

A path is a grid's record (experiments/results/<grid>.jsonl, records.py), a grid's raw run folders
(compacted on the way, records.compact_runs) or one train.py out_dir. What is drawn: figures.py; the tables:
tables.py; the verdicts: verdicts.py (statistics in stats.py); which runs a grid compares: grids.py. --write puts
each verdict table into the <!-- NAME --> ... <!-- /NAME --> block of a markdown file (replace_block).
"""
import argparse
import os
import sys

from lab.figures import (plot_advantage_curves, plot_advantage_k, plot_comparison, plot_estimator_gradients,
                         plot_experiments)
from lab.grids import comparisons
from lab.records import compact_runs, load_records, load_run, run_record, write_records
from lab.tables import per_size_table
from lab.verdicts import verdict_tables

FIGURES = os.path.join("experiments", "figures")


def read_source(path):
    """Records from a results file, or from a grid's raw run folders (compacted here): (records, {skipped: why})."""
    if os.path.isfile(path):
        return load_records(path), {}
    records, skipped = compact_runs(path)
    known = {run for entries in comparisons(records[0]["grid"] if records else "", {r["run"] for r in records}).values()
             for _, run in entries}
    for record in [r for r in records if r["run"] not in known]:
        skipped[os.path.join(path, f"{record['run']}-seed{record['seed']}")] = f"{record['run']!r} is not a run that lab/grids.py compares"
    return [r for r in records if r["run"] in known], skipped


def has_block(path, name):
    """Whether a markdown file holds a '<!-- NAME -->' ... '<!-- /NAME -->' block."""
    with open(path) as f:
        page = f.read()
    return f"<!-- {name} -->" in page and f"<!-- /{name} -->" in page


def replace_block(path, name, text):
    """Replace what lies between '<!-- NAME -->' and '<!-- /NAME -->' in a markdown file with text."""
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    if not has_block(path, name):
        raise ValueError(f"{path} has no {begin} ... {end} block")
    with open(path) as f:
        page = f.read()
    head, rest = page.split(begin, 1)
    with open(path, "w") as f:
        f.write(head + begin + "\n" + text.strip() + "\n" + end + rest.split(end, 1)[1])


def main(argv=None):
    """Exit status 2 for a path that does not exist or bad options, 1 if it holds no usable run. Runs that
    cannot be plotted are named on stderr with the reason and skipped; the others are drawn."""
    from infra.cli import CommandError, add_debug_option, usage_error

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", help="experiments/results/<grid>.jsonl, a grid's run folder "
                                                "experiments/runs/<grid>, or one train.py out_dir")
    parser.add_argument("--out", default=FIGURES)
    parser.add_argument("--compact", metavar="PATH", help="write the runs folder's records to PATH (.jsonl or .jsonl.gz)")
    parser.add_argument("--verdicts", action="store_true", help="print the verdict tables of the records (RESULTS.md)")
    parser.add_argument("--write", metavar="MARKDOWN", action="append", default=[],
                        help="with --verdicts: put each table into the block of its name in MARKDOWN (repeatable: "
                             "each table goes to the file that has its block)")
    parser.add_argument("--n_rollouts", type=int, default=16)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--advantages-only", action="store_true")
    parser.add_argument("--estimator-gradients", action="store_true",
                        help="only the figure of what each estimator optimises (estimator_gradients.png)")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    # check the options and read every run before drawing anything
    if not 1 <= args.k <= args.n_rollouts:
        usage_error(f"--k={args.k} must be between 1 and --n_rollouts={args.n_rollouts}")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        usage_error(f"--out={args.out!r} is a file, not a folder")
    paths = [] if args.advantages_only else args.runs
    for path in paths:
        if not os.path.exists(path):
            usage_error(f"runs {path!r} does not exist")
    if args.compact and (len(paths) != 1 or not os.path.isdir(paths[0])):
        usage_error("--compact needs exactly one runs folder (experiments/runs/<grid>)")
    if args.verdicts:
        records = [record for path in paths for record in read_source(path)[0]]
        if not records:
            usage_error("--verdicts needs the records of the long and tasks grids (experiments/results/*.jsonl)")
        for path in args.write:
            if not os.path.isfile(path):
                usage_error(f"--write={path!r} is not a markdown file")
        tables = verdict_tables(records)
        if not args.write:
            for name, table in tables.items():
                print(f"{name}:\n\n{table}\n")
            return
        targets = {name: [path for path in args.write if has_block(path, name)] for name in tables}
        for name, paths in targets.items():  # every table has a place before any file is written
            if not paths:
                usage_error(f"no --write file has a <!-- {name} --> ... <!-- /{name} --> block for the {name} table")
        for name, paths in targets.items():
            for path in paths:
                replace_block(path, name, tables[name])
                print(f"wrote the {name} table into {path}")
        return
    single = len(paths) == 1 and os.path.exists(os.path.join(paths[0], "metrics.jsonl"))  # one train.py out_dir
    sources = []
    if single:
        train, evaluations = load_run(paths[0])
        if not train and not evaluations:
            raise CommandError(f"{os.path.join(paths[0], 'metrics.jsonl')} holds no complete record yet")
    else:
        for path in paths:
            records, skipped = read_source(path)
            for folder, why in skipped.items():
                print(f"warning: skipped {folder}: {why}", file=sys.stderr)
            if not records:
                raise CommandError(f"no run to plot in {path!r}{f' ({len(skipped)} skipped, see above)' if skipped else ''}"
                                   ": expected a results file, <group>/<name>-seed<N>/metrics.jsonl as experiments/maze.py "
                                   "writes them under experiments/runs/<grid>, or one train.py out_dir")
            sources.append(records)
        if args.compact:
            write_records(compact_runs(paths[0])[0], args.compact)
            print(f"wrote {args.compact} ({os.path.getsize(args.compact) / 1e6:.2f} MB)")

    os.makedirs(args.out, exist_ok=True)
    if args.estimator_gradients:
        plot_estimator_gradients(os.path.join(args.out, "estimator_gradients.png"), args.n_rollouts, args.k)
        print(f"wrote {args.out}/estimator_gradients.png")
        return
    plot_advantage_curves(os.path.join(args.out, "advantage_curves.png"), args.n_rollouts, args.k)
    plot_advantage_k(os.path.join(args.out, "advantage_curves_k.png"), args.n_rollouts,
                     ks=tuple(k for k in (2, 4, 8) if k <= args.n_rollouts))
    print(f"wrote {args.out}/advantage_curves.png, advantage_curves_k.png")
    if single:
        name = os.path.basename(os.path.normpath(paths[0]))
        record = run_record(paths[0], grid=name, run=name)
        plot_comparison([(name, [record])], os.path.join(args.out, f"{name}_curves.png"), title=name)
        if record["evals"]:
            print(per_size_table([(name, [record])], [record]))
        else:
            print(f"warning: {paths[0]} has no held-out evaluation yet: curves only, no table", file=sys.stderr)
        return
    for records in sources:
        print(plot_experiments(records, args.out))


if __name__ == "__main__":
    from infra.cli import run

    run(main)
