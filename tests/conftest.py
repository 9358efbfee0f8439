"""Shared test fixtures: a micro char-level tokenizer and a micro Qwen2ForCausalLM (no hub access), a micro chat
model folder (byte-level BPE, ChatML: a Qwen2.5-Instruct folder in miniature), a small Qwen2.5-Instruct folder
(the real tokenizer, chat template, special tokens and 151,936-row vocabulary; 2 layers of width 64), and `scripts`, which runs the
project's scripts as `python script.py args` does, without paying their imports.

The tokenizer has the special tokens the project uses (`<pad>`, `<eos>`, `<bos>`) and also makes
`<answer>` / `</answer>` special tokens, so tests can check that decoding keeps them.

`scripts.run(["train.py", "--k=9"])` -> CompletedProcess(returncode, stdout, stderr). A script run costs ~5 s of
imports (torch, transformers, accelerate, datasets) before its first line of work, and the suite runs dozens.
So one server process (`python tests/conftest.py --serve`, started once per session) imports them once and
runs no torch op, and for each script forks a child that runs it as `__main__` with that argv, cwd,
sys.path[0] and environment, its stdout and stderr in files, and exits as the interpreter would (an
uncaught exception prints its traceback and exits 1; SystemExit("message") prints the message and exits 1).
`["accelerate", "launch", ...]` runs accelerate's console script the same way. What a script itself starts
(compare.py's train.py runs, accelerate's processes) are real interpreters. Off Linux (or with
NANOPASSK_TEST_FORK=0) every script is a new interpreter: the same results, slower.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import pytest
import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config):
    # colleagues share the 2 cores. torch's default follows OMP_NUM_THREADS, so OMP_NUM_THREADS=1 (.ci/run's
    # second pass, which checks that no test depends on one reduction order) gives 1 thread here.
    torch.set_num_threads(min(2, torch.get_num_threads()))

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<answer>", "</answer>"]
CHARS = list("*.SE\n>UDLR abc")


def make_micro_tokenizer(pad_is_eos=False):
    """Char-level PreTrainedTokenizerFast over CHARS (one token per character); pads on the left."""
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + CHARS)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<bos>", eos_token="<eos>",
        pad_token="<eos>" if pad_is_eos else "<pad>",
        additional_special_tokens=["<answer>", "</answer>"], padding_side="left")
    return tokenizer


def make_micro_model(tokenizer, seed=0, initializer_range=0.2):
    """1-layer Qwen2 with hidden size 32. A large init makes attention (and so positions) matter."""
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        initializer_range=initializer_range, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    return Qwen2ForCausalLM(config).eval()


# Qwen2.5-Instruct's template without the default system turn
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
ENGLISH = ["You are a helpful assistant. The quick brown fox jumps over the lazy dog.",
           "Think step by step, then write the final path in the answer tags: <answer> RRDDLU </answer>"]


def build_bpe_tokenizer():
    """Byte-level BPE trained on maze prompts and English, ChatML special tokens, eos <|im_end|>, pad
    <|endoftext|>: the layout of Qwen2.5-Instruct's tokenizer, small."""
    from mazes import format_prompt, make_mazes

    mazes = make_mazes((5, 7), {5: 20, 7: 20}, (5,), 2, seed=1)["train"]["maze"]
    texts = [format_prompt(maze, "paper") for maze in mazes] + ENGLISH
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=CHATML, clean_up_tokenization_spaces=False)


def build_chat_model(tokenizer, seed=0):
    """A random 1-layer Qwen2 over the BPE tokenizer (Qwen2.5-Instruct's layout at micro size)."""
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return Qwen2ForCausalLM(config)


@pytest.fixture(scope="session")
def chat_model_dir(tmp_path_factory):
    """A saved micro chat model folder, as a --model=/path/to/Qwen2.5-Instruct would be."""
    path = str(tmp_path_factory.mktemp("chat_qwen2"))
    tokenizer = build_bpe_tokenizer()
    build_chat_model(tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path




@pytest.fixture(scope="session")
def qwen_tokenizer():
    """Qwen2.5-Instruct's real tokenizer, rebuilt offline (benchmarks/shapes.py; ~10 s, once per session)."""
    from benchmarks.shapes import qwen_tokenizer as build

    return build()


@pytest.fixture(scope="session")
def qwen_model_dir(tmp_path_factory, qwen_tokenizer):
    """A saved folder as a --model=/path/to/Qwen2.5-0.5B-Instruct would be, small: random float32 weights (2 layers,
    width 64, 151,936-row tied embeddings), the real tokenizer and Qwen2.5-Instruct's generation_config.json."""
    from benchmarks.shapes import SMALL, write_model_folder

    path = str(tmp_path_factory.mktemp("qwen2.5_small"))
    return write_model_folder(path, "0.5b", dtype=torch.float32, tokenizer=qwen_tokenizer, **SMALL)


@pytest.fixture(scope="session")
def micro_tokenizer():
    return make_micro_tokenizer()


@pytest.fixture(scope="session")
def micro_model(micro_tokenizer):
    return make_micro_model(micro_tokenizer)


# -----------------------------------------------------------------------------
# scripts: the fork server (module docstring)
PRELOAD = ("torch", "numpy", "transformers", "transformers.models.qwen2.modeling_qwen2", "accelerate",
           "accelerate.commands.accelerate_cli", "datasets", "tokenizers", "safetensors.torch", "tqdm.auto",
           "reasoning_gym", "matplotlib.pyplot")
SCRIPT_ENV = {"OMP_NUM_THREADS": "1",  # scripts run beside the suite, on the same shared cores
              "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def serve():
    """Read requests (JSON lines) from stdin, fork a child for each at once, answer {"id", "status"} as each ends."""
    import importlib
    import select

    for name in PRELOAD:  # imports only: no torch op runs here, so no thread pool exists to break in a fork
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    print("ready", flush=True)
    running, pending, reading = {}, b"", True  # running: pid -> (request id, deadline)
    while reading or running:
        if reading and select.select([0], [], [], 0.02 if running else None)[0]:
            data = os.read(0, 1 << 16)
            reading, pending = bool(data), pending + data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _child(request)
                running[pid] = (request["id"], time.time() + request["timeout"])
        elif not reading:
            time.sleep(0.02)
        for pid, (request_id, deadline) in list(running.items()):
            done, raw = os.waitpid(pid, os.WNOHANG)
            if not done and time.time() > deadline:
                os.killpg(pid, 9)  # the child and whatever it started
                os.waitpid(pid, 0)
            if done or time.time() > deadline:
                del running[pid]
                print(json.dumps({"id": request_id, "status": os.waitstatus_to_exitcode(raw) if done else -9}),
                      flush=True)


def _child(request):
    """Run the request as `python script args`, `python -m module args` or `accelerate args` would; never return."""
    import atexit
    import builtins
    import runpy
    import traceback
    import types

    code, code_object = 1, None
    try:
        os.setpgid(0, 0)
        os.chdir(request["cwd"])
        for key, value in request["env"].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if request["env"].get("PYTHONWARNINGS"):  # read at interpreter start: apply it as the interpreter does
            import warnings

            for option in request["env"]["PYTHONWARNINGS"].split(","):
                warnings._setoption(option)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
        os.dup2(os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
        argv = request["argv"]
        if argv[0] == "accelerate":
            from accelerate.commands.accelerate_cli import main

            sys.argv = list(argv)
            main()
        elif argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]  # runpy puts the module's file in argv[0]
            sys.path[0] = os.getcwd()
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:  # as python does for `python script.py`: argv as given, an absolute __file__, the real folder first
            sys.argv, path = list(argv), os.path.abspath(argv[0])
            sys.path[0] = os.path.dirname(os.path.realpath(argv[0]))
            main = sys.modules["__main__"] = types.ModuleType("__main__")
            main.__dict__.update(__file__=path, __builtins__=builtins, __spec__=None)
            with open(path, "rb") as f:
                code_object = compile(f.read(), path, "exec")
            exec(code_object, main.__dict__)
        code = 0
    except SystemExit as stop:  # as the interpreter: None -> 0, an int -> itself, anything else printed -> 1
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
    except BaseException as error:  # the traceback from the script's own frame on, as the interpreter prints it
        frames = error.__traceback__
        while frames is not None and frames.tb_frame.f_code is not code_object:
            frames = frames.tb_next
        traceback.print_exception(type(error), error, frames or error.__traceback__)
    finally:
        try:
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


class Scripts:
    """The client of the server: run() one script and wait; submit() several, then wait() for each (they run at
    once: parallel commands on the shared cores are the caller's choice). Where fork is not safe after importing
    torch (macOS, Windows), or with NANOPASSK_TEST_FORK=0, each script is a plain new interpreter instead."""

    def __init__(self):
        self.folder = tempfile.mkdtemp(prefix="scripts-")
        env = {key: value for key, value in os.environ.items() if key != "NANOPASSK_DEBUG"}
        self.env = {**env, **SCRIPT_ENV}
        self.fork = sys.platform.startswith("linux") and os.environ.get("NANOPASSK_TEST_FORK", "1") != "0"
        self.process = None
        if self.fork:
            self.process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve"], cwd=ROOT,
                                            text=True, env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            assert self.process.stdout.readline().strip() == "ready", "the script server did not start"
        self.count, self.requests, self.finished, self.children = 0, {}, {}, {}

    def run(self, argv, cwd=ROOT, env=None, timeout=600):
        """CompletedProcess of `python *argv` (or `accelerate *argv[1:]`) in cwd; env: variables to set (None:
        unset) over the session's. returncode -9 if it ran past timeout seconds (then killed)."""
        return self.wait(self.submit(argv, cwd, env, timeout))

    def submit(self, argv, cwd=ROOT, env=None, timeout=600):
        """Start a script as run() does; return its id for wait()."""
        argv = [str(arg) for arg in argv]
        self.count += 1
        out, err = (os.path.join(self.folder, f"{self.count}.{name}") for name in ("out", "err"))
        request = dict(id=self.count, argv=argv, cwd=str(cwd), env=env or {}, stdout=out, stderr=err, timeout=timeout)
        self.requests[self.count] = request
        if self.fork:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        else:
            command = [sys.executable, *(["-m", "accelerate.commands.accelerate_cli", *argv[1:]]
                                         if argv[0] == "accelerate" else argv)]
            child_env = {**self.env, **request["env"]}
            with open(out, "w") as stdout, open(err, "w") as stderr:
                child = subprocess.Popen(command, cwd=cwd, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                         env={k: v for k, v in child_env.items() if v is not None},
                                         start_new_session=True)
            self.children[self.count] = (child, time.time() + timeout)
        return self.count

    def _next_reply(self):
        if self.fork:
            reply = json.loads(self.process.stdout.readline())
            return reply["id"], reply["status"]
        while True:
            for request_id, (child, deadline) in list(self.children.items()):
                if child.poll() is None and time.time() > deadline:
                    os.killpg(child.pid, 9)
                    child.wait()
                    child.returncode = -9
                if child.returncode is not None:
                    del self.children[request_id]
                    return request_id, child.returncode
            time.sleep(0.02)

    def wait(self, request_id=None):
        """The CompletedProcess of that script (or of the next one to end, if None), once it has ended."""
        while request_id not in self.finished and not (request_id is None and self.finished):
            done, status = self._next_reply()
            self.finished[done] = status
        request_id = next(iter(self.finished)) if request_id is None else request_id
        status, request = self.finished.pop(request_id), self.requests.pop(request_id)
        outputs = []
        for path in (request["stdout"], request["stderr"]):
            with open(path, encoding="utf-8", errors="replace") as f:
                outputs.append(f.read())
            os.remove(path)
        result = subprocess.CompletedProcess(["python", *request["argv"]], status, *outputs)
        result.id = request_id
        return result

    def close(self):
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait(timeout=60)
        os.rmdir(self.folder)


@pytest.fixture(scope="session")
def scripts():
    runner = Scripts()
    yield runner
    runner.close()


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    serve()
