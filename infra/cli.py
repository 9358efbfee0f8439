"""How every command-line entry point (evaluate.py, compare.py, lab/plots.py, benchmarks/bench.py, infra/tiny.py,
experiments/maze.py) answers bad input: one line on stderr naming the problem, `<script>: error: <message>`, never
a stack trace.

Exit status 2 is bad usage, found before any compute: an unknown option or a value out of range (argparse's
own errors print the usage line first, then the same one-line `error:`), a path that does not exist or is
not the kind of thing the option needs. Exit status 1 is a failure while running: a file that exists but
cannot be read (a truncated checkpoint), a subprocess that failed, nothing usable found, any other exception.
`--debug` on the command line, or NANOPASSK_DEBUG=1 in the environment, prints the full traceback first
(the exit status stays the same).

    def main(argv=None):
        parser = argparse.ArgumentParser()
        add_debug_option(parser)
        args = parser.parse_args(argv)
        if args.steps < 1:
            usage_error(f"--steps={args.steps} must be >= 1")  # exit 2, before any compute
        ...                                                     # anything raised here: exit 1

    if __name__ == "__main__":
        run(main)

train.py has its own nanoGPT-style parsing (`apply_overrides`: a config file, then --key=value) and answers a
bad config with `bad config: ...` (exit status 1).
"""
import ast
import os
import subprocess
import sys
import traceback
import types

DEBUG_ENV = "NANOPASSK_DEBUG"


class CommandError(Exception):
    """A problem the user can fix: the message is the line printed, `status` the exit status."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


def one_line(error):
    """'TypeName: message' on one line (a library's message may span several)."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def usage_error(message):
    """Stop with exit status 2: the command line asks for something that cannot work (check before compute)."""
    raise CommandError(message, 2)


def add_debug_option(parser):
    parser.add_argument("--debug", action="store_true",
                        help=f"on an error show the full traceback (or set {DEBUG_ENV}=1)")


def debug_requested(argv):
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def describe(error):
    """(one-line message, exit status) of an exception that stopped an entry point."""
    if isinstance(error, CommandError):
        message, status = str(error), error.status
    elif isinstance(error, KeyboardInterrupt):
        message, status = "interrupted", 130
    elif isinstance(error, subprocess.CalledProcessError):  # e.g. train.py, which printed its own reason
        script = next((arg for arg in error.cmd[1:] if str(arg).endswith(".py")), error.cmd[0])
        message, status = f"{os.path.basename(str(script))} stopped with exit status {error.returncode}", 1
        said = [line for line in str(error.output or "").splitlines() if line.strip()]
        if said:  # the subprocess's own last line (train.py's "bad config: ...") says why
            message += f": {said[-1].strip()}"
    elif isinstance(error, (ValueError, OSError)):  # our functions' clear messages; file-system errors
        message, status = str(error), 1
    else:  # unexpected: say what it was and how to see where
        message, status = f"{type(error).__name__}: {error} (rerun with --debug for the traceback)", 1
    return " ".join(message.split()), status


def run(main, argv=None):
    """sys.exit(main(argv)), with every exception turned into one line on stderr and its exit status
    (after the traceback under --debug / NANOPASSK_DEBUG=1)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        sys.exit(main(argv) or 0)
    except BrokenPipeError:  # stdout piped into e.g. `head`, which stopped reading: nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (the flush at exit would fail too)
        sys.exit(1)
    except (Exception, KeyboardInterrupt) as error:
        if debug_requested(argv):
            traceback.print_exc()
        message, status = describe(error)
        print(f"{os.path.basename(sys.argv[0])}: error: {message}", file=sys.stderr)
        sys.exit(status)


def apply_overrides(argv, scope, keys):
    """nanoGPT-style configuration of a script's globals `scope`: each positional argument is a config file
    (python assignments), each --key=value an override (a python literal, else a bare string); later ones win.
    Only `keys` can be set, and a value must have its default's type (an int where a float is expected is
    taken; a list or int where a tuple is; an int or a dict for n_train and n_test, e.g. n_train=2000 or a count per
    group {5: 150, 7: 10000}). SystemExit says what
    is wrong in one line."""
    for arg in argv:
        if not arg.startswith("--"):
            if not os.path.isfile(arg):
                raise SystemExit(f"config file {arg!r} not found")
            pairs = read_config_file(arg).items()
        else:
            if "=" not in arg:
                raise SystemExit(f"bad argument {arg!r}: use --key=value")
            key, raw = arg[2:].split("=", 1)
            try:
                value = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                value = raw  # a bare string
            pairs = [(key, value)]
        for key, value in pairs:
            if key not in keys:
                raise SystemExit(f"unknown config key {key!r}; known: {', '.join(keys)}")
            default = scope[key]
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if isinstance(default, tuple) and isinstance(value, (list, int)):
                value = tuple(value) if isinstance(value, list) else (value,)
            per_group = {type(value), type(default)} <= {dict, int} and key in ("n_train", "n_test")  # int or per group
            if type(value) is not type(default) and not per_group:
                raise SystemExit(f"config {key}={value!r}: expected {type(default).__name__} like {default!r}")
            scope[key] = value


def read_config_file(path):
    """{name: value} of the assignments of a config file (python). It runs with its own `__file__`, so that it
    can build on another file beside it from any working directory (config/maze_qwen2.5_7b.py runs
    paper_maze.py); the modules it imports to do so are not values."""
    values = {}
    with open(path) as f:
        exec(f.read(), {"__file__": os.path.abspath(path)}, values)
    return {name: value for name, value in values.items() if not isinstance(value, types.ModuleType)}


def config_defaults(script):
    """The config block of a nanoGPT-style script (train.py) without running it: {name: value} of its top-level
    assignments of literal values (`eps_low, eps_high = 0.2, 0.28` too) above the line `config_keys = ...`.
    evaluate.py reads train.py's defaults this way, so that each default is written once."""
    with open(script) as f:
        tree = ast.parse(f.read())
    defaults = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(target, "id", "") == "config_keys" for target in node.targets):
            break
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0]
        try:
            value = ast.literal_eval(node.value)
        except ValueError:  # not a literal: not a config value
            continue
        if isinstance(target, ast.Name):
            defaults[target.id] = value
        elif isinstance(target, ast.Tuple) and all(isinstance(name, ast.Name) for name in target.elts):
            defaults.update(zip((name.id for name in target.elts), value))
    return defaults
