"""The math reward (paper appendix E.1: AIME 2024/2025, OlymMATH; section 2.1: R in {0, 1}), decided by math-verify.

    reward = 1 if math_verify.verify(parse(gold), parse(last \\boxed{...} of the response)) else 0

The gold answer is parsed first, then the content of the response's last `\\boxed{...}` (balanced braces; `\\{`
and `\\}` are text, not structure), both written as `\\boxed{...}` so that the two go through the same extraction.
Equivalent forms score 1: `\\frac{1}{2}` and `0.5`, `\\sqrt{2}/2` and `\\frac{\\sqrt{2}}{2}`, `\\{1,2,3\\}` and
`\\{3,1,2\\}`. No `\\boxed{}`, an unclosed one, or a wrong value scores 0.

A response is untrusted input, and math-verify hands it to sympy, which evaluates eagerly: `9^{9^{9^{9}}}` is an
integer of more than 10^8 digits, 5,000 nested parentheses recurse past Python's stack, `(10^{9})!` never ends.
math-verify's own timeout is `signal.alarm`, which works only on the main thread of the main interpreter, and on
a timeout it logs the whole answer. So the work is bounded twice, before and around math-verify:
  1. before parsing (`rejected`, microseconds): an answer over MAX_ANSWER_CHARS, nested deeper than MAX_NESTING
     brackets, with a power inside an exponent (a tower) or an exponent over MAX_EXPONENT_DIGITS digits scores 0
     unparsed. These catch the known hostile shapes cheaply; they are not the bound.
  2. the bound: math-verify runs in a worker process (`python mathreward.py --serve`, its timeouts disabled,
     its logging and output sent to /dev/null, its address space capped at WORKER_MEMORY_BYTES). The caller
     waits for each reply at most `timeout` seconds (select on the pipe: any thread may call); past that the
     worker is killed (SIGKILL) and the answer scores 0; a worker that crashes (a recursion or memory error)
     scores 0 the same way. A second worker stands by, already imported, and takes the killed one's place
     while a new stand-by starts. So one call takes at most `timeout` (plus what is left of a stand-by's
     start, ~1.5-2.5 s of imports, when two answers ran out of time within that long).
The process prints at most one short line, on the first answer that ran out of time. Results are cached by
(gold, answer), since many responses to a prompt give the same answer.
"""
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict

MAX_ANSWER_CHARS = 300  # a MATH answer (a matrix, an interval union) is shorter; AIME's are 3 digits
MAX_NESTING = 6  # brackets ( [ { inside one another; parsing time grows steeply with depth (8: ~1.5 s)
MAX_EXPONENT_DIGITS = 4  # 2^{2025} is fine, 10^{10^{10}} and 10^{99999999} are not
MAX_FACTORIAL_DIGITS = 3  # 100! is fine, (1000!)! and (10^{9})! are not
TIMEOUT_SECONDS = 3.0  # one parse + verify in the worker: ~50x a legitimate answer's on an idle core (1-60 ms)
START_SECONDS = 60.0  # a fresh worker's imports (~1.5 s on an idle CPU)
WORKER_MEMORY_BYTES = 2 << 30
CACHE_SIZE = 1 << 16
BOXED = "\\boxed{"
WARM_UP = ["\\frac{1}{2}", "\\sqrt{2}/2", "\\{1,2\\}", "(1,2]", "x^2+1", "\\left(\\frac{1}{2},3\\right)", "\\text{A}",
           "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "(-\\infty,2)\\cup(3,\\infty)", "2\\pi", "0.5", "x=3", "10^{3}"]


def last_boxed(text):
    """The content of the last `\\boxed{...}` in text, or None (none there, or never closed)."""
    if not isinstance(text, str):
        return None
    start = text.rfind(BOXED)
    if start < 0:
        return None
    depth, i = 1, start + len(BOXED)
    while i < len(text):
        ch = text[i]
        if ch == "\\":  # \{ and \} are set braces, not structure; skip the escaped character
            i += 2
            continue
        depth += (ch == "{") - (ch == "}")
        if depth == 0:
            return text[start + len(BOXED):i]
        i += 1
    return None


def rejected(answer):
    """Why an extracted answer is not worth parsing ('too long', 'nested too deep', 'power tower', 'huge
    exponent', 'big factorial'), or None. One pass over the answer."""
    if len(answer) > MAX_ANSWER_CHARS:
        return "too long"
    depth, exponents = 0, []  # exponents: the depths of the open ^{...} groups
    for i, ch in enumerate(answer):
        if ch in "([{":
            depth += 1
            if depth > MAX_NESTING:
                return "nested too deep"
        elif ch in ")]}":
            depth -= 1
            if exponents and depth < exponents[-1]:
                exponents.pop()
                if answer[i + 1:].lstrip().startswith("^"):
                    return "power tower"  # x^{2}^{3}
        elif ch == "^":
            rest = answer[i + 1:].lstrip()
            if exponents:
                return "power tower"
            if len(rest.lstrip("{ ")) - len(rest.lstrip("{ ").lstrip("0123456789")) > MAX_EXPONENT_DIGITS:
                return "huge exponent"
            if rest.startswith("{"):
                exponents.append(depth + 1)
            else:  # LaTeX's exponent is one character: a^b^c, 10^10^10 (read as 10^1 0^1 0 or worse)
                token = re.match(r"\\[A-Za-z]+|\d+|.?", rest, re.DOTALL).group()
                if rest[len(token):].lstrip().startswith("^"):
                    return "power tower"
        elif ch == "!":
            before = answer[:i].rstrip()
            digits = len(before) - len(before.rstrip("0123456789"))
            if not 0 < digits <= MAX_FACTORIAL_DIGITS:
                return "big factorial"  # (10^{9})!, (1000!)!, n! is fine only for a short numeral n
    return None


class MathVerifier:
    """math-verify in a worker process, every call bounded by `timeout` seconds (module docstring). A second,
    idle worker stands by, so that the call after a kill does not wait for a fresh worker's imports."""

    def __init__(self, timeout=TIMEOUT_SECONDS):
        self.timeout, self.workers, self.warned = timeout, [], False
        self.lock, self.cache = threading.Lock(), OrderedDict()

    def start(self, n_workers=1):
        """Start the worker (and a stand-by for n_workers=2) now: it imports math-verify while the caller goes on."""
        self.workers = [worker for worker in self.workers if worker.poll() is None]
        while len(self.workers) < n_workers:
            worker = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            worker.buffer, worker.ready = b"", False
            self.workers.append(worker)
        return self

    def close(self):
        for worker in self.workers:
            worker.kill()
            worker.wait()
        self.workers = []

    def __del__(self):
        try:
            self.close()
        except Exception:  # at interpreter exit; the workers end anyway when their stdin closes
            pass

    @staticmethod
    def read_line(worker, deadline):
        """One line from the worker before `deadline` (time.monotonic()), or None (late, or the worker died)."""
        fd = worker.stdout.fileno()
        while b"\n" not in worker.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            worker.buffer += chunk
        line, worker.buffer = worker.buffer.split(b"\n", 1)
        return line.decode()

    def ask(self, request):
        """The worker's reply (a JSON value) to `request`, or None when it took over `timeout` or crashed:
        then that worker is killed, the stand-by takes its place and a new stand-by starts."""
        with self.lock:
            worker = self.start().workers[0]
            if not worker.ready:
                worker.ready = self.read_line(worker, time.monotonic() + START_SECONDS) == "ready"
                if not worker.ready:
                    self.close()
                    raise RuntimeError("the math-verify worker did not start (is math-verify installed?)")
                self.start(2)  # the stand-by starts once the first worker is up, not competing with it
            try:
                worker.stdin.write((json.dumps(request) + "\n").encode())
                worker.stdin.flush()
                line = self.read_line(worker, time.monotonic() + self.timeout)
            except OSError:  # a broken pipe: the worker died
                line = None
            if line is None:
                worker.kill()
                worker.wait()
                self.start(2)
                return None
            return json.loads(line)

    def parses(self, gold):
        """Whether math-verify finds a mathematical expression in the gold answer (in bounded time)."""
        if re.fullmatch(r"-?\d{1,30}", gold.strip()):
            return True
        return self.ask(["parse", gold]) is True

    def verify(self, gold, answer):
        """Whether `answer` (the extracted text) equals `gold`; False in every doubtful case."""
        key = (gold, answer)
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        if rejected(answer) is not None:
            return False
        try:
            result = self.ask(["verify", gold, answer])
        except RuntimeError as error:  # no worker: every answer scores 0, said once
            result = self.warn(str(error))
        if result is None:
            result = self.warn(f"an answer took over {self.timeout:g} s to verify and scored 0")
        self.cache[key] = result is True
        if len(self.cache) > CACHE_SIZE:
            self.cache.popitem(last=False)
        return result is True

    def warn(self, message):
        if not self.warned:
            print(f"mathreward: {message} (further ones are silent)", file=sys.stderr)
            self.warned = True
        return False

    def reward(self, response, gold):
        """1.0 if the last \\boxed{} of `response` equals `gold`, else 0.0; never raises."""
        answer = last_boxed(response)
        if answer is None or not isinstance(gold, str):
            return 0.0
        return 1.0 if self.verify(gold, answer) else 0.0


def serve():
    """The worker: one JSON request per line on stdin, one JSON reply per line on the original stdout."""
    import logging
    import resource

    replies = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # whatever sympy or math-verify prints goes nowhere
    sys.stdout = sys.stderr
    logging.disable(logging.CRITICAL)
    sys.setrecursionlimit(10_000)
    from math_verify import LatexExtractionConfig, parse, verify

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, hard))
    config = [LatexExtractionConfig(boxed_match_priority=0)]
    golds = {}

    def parsed(text):
        return parse("\\boxed{" + text + "}", extraction_config=config, parsing_timeout=None)

    for text in WARM_UP:  # the first parses pay for lazy imports and fill the LaTeX parser's caches
        parsed(text)
    print("ready", file=replies, flush=True)
    for line in sys.stdin:
        try:
            request = json.loads(line)
            if request[0] == "parse":
                reply = any(not isinstance(value, str) for value in parsed(request[1]))
            else:
                gold = golds[request[1]] if request[1] in golds else golds.setdefault(request[1], parsed(request[1]))
                reply = bool(verify(gold, parsed(request[2]), timeout_seconds=None))
        except BaseException:  # anything odd in an answer is a 0, never the worker's end
            reply = False
        print(json.dumps(reply), file=replies, flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    serve()
