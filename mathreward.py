"""The math reward (paper appendix E.1: AIME 2024/2025, OlymMATH; section 2.1: R in {0, 1}), decided by math-verify.

    reward = 1 if math_verify.verify(parse(gold), parse(last \\boxed{...} of the response)) else 0

The gold answer and the content of the response's last `\\boxed{...}` (`last_boxed`: balanced braces; `\\{` and
`\\}` are text) go through the same extraction. Equivalent forms score 1: `\\frac{1}{2}` and `0.5`, `\\{1,2,3\\}`
and `\\{3,1,2\\}`. No `\\boxed{}`, an unclosed one, or a wrong value scores 0.

A response is untrusted input, and math-verify hands it to sympy, which evaluates eagerly (`9^{9^{9^{9}}}`,
`(10^{9})!`, 5,000 nested parentheses), while its own timeout (`signal.alarm`) works only on the main thread. So
the work is bounded twice: `rejected` turns away the known hostile shapes before parsing (microseconds), and
`MathVerifier` runs math-verify in a worker process whose forked children are killed past `timeout` seconds (the
bound; its docstring). Results are cached by (gold, answer), since many responses to a prompt give the same answer.
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
START_SECONDS = 60.0  # the worker's imports and warm-up (~2 s on an idle CPU)
SLACK_SECONDS = 2.0  # past timeout + this, the worker itself is replaced (it should never take it: it only waits)
WORKER_MEMORY_BYTES = 2 << 30
CACHE_SIZE = 1 << 16
BOXED = "\\boxed{"
WARM_UP = ["\\frac{1}{2}", "\\sqrt{2}/2", "\\{1,2\\}", "(1,2]", "x^2+1", "\\text{A}"]  # typical shapes, parsed once


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
    """math-verify in a worker process, every call bounded by `timeout` seconds.

    The worker (`python mathreward.py --serve T`) imports and warms up math-verify once, its timeouts disabled,
    its logging and output sent to /dev/null. It computes nothing itself: a child forked from it does (a fork of a
    warm single-threaded process: ready in milliseconds, its address space capped at WORKER_MEMORY_BYTES), and
    the worker waits for each reply at most `timeout` seconds (select on a pipe). Past that, or when the child
    dies (a recursion or memory error), the child is killed (SIGKILL), the answer scores 0, and the next request
    goes to a new fork. So every call takes at most `timeout` plus milliseconds, whatever came before it (the
    first call also waits for the worker's start, START_SECONDS at most); the caller may be any thread (it too
    waits with select, and replaces the worker should the worker itself ever miss timeout + SLACK_SECONDS).
    It prints at most one short line, on the first answer that ran out of time.
    """

    def __init__(self, timeout=TIMEOUT_SECONDS):
        self.timeout, self.worker, self.warned = timeout, None, False
        self.lock, self.cache = threading.Lock(), OrderedDict()

    def start(self):
        """Start the worker now (it imports math-verify while the caller goes on); returns self."""
        if self.worker is None or self.worker.poll() is not None:
            self.worker = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", str(self.timeout)],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            self.worker.buffer, self.worker.ready = b"", False
        return self

    def wait_ready(self):
        """Start the worker and wait for its imports (a clean start for a measurement); returns self."""
        with self.lock:
            self.ready_worker()
        return self

    def ready_worker(self):
        worker = self.start().worker
        if not worker.ready:
            worker.ready = self.read_line(time.monotonic() + START_SECONDS) == "ready"
            if not worker.ready:
                self.close()
                raise RuntimeError("the math-verify worker did not start (is math-verify installed?)")
        return worker

    def close(self):
        if self.worker is not None:
            self.worker.kill()
            self.worker.wait()
        self.worker = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # at interpreter exit; the worker ends anyway when its stdin closes
            pass

    def read_line(self, deadline):
        """One line from the worker before `deadline` (time.monotonic()), or None (late, or the worker died)."""
        fd = self.worker.stdout.fileno()
        while b"\n" not in self.worker.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                return None
            self.worker.buffer += chunk
        line, self.worker.buffer = self.worker.buffer.split(b"\n", 1)
        return line.decode()

    def ask(self, request):
        """The worker's reply (a JSON value) to `request`: None when the answer took over `timeout` (the worker
        killed its computing child). Should the worker itself not reply within timeout + SLACK_SECONDS, it is
        killed and replaced (a fresh import, seconds) and the reply is None too."""
        with self.lock:
            worker = self.ready_worker()
            try:
                worker.stdin.write((json.dumps(request) + "\n").encode())
                worker.stdin.flush()
                line = self.read_line(time.monotonic() + self.timeout + SLACK_SECONDS)
            except OSError:  # a broken pipe: the worker died
                line = None
            if line is None:
                self.close()
                self.start()
                return None
            return json.loads(line)

    def parses(self, gold):
        """Whether math-verify finds a mathematical expression in the gold answer (in bounded time)."""
        if re.fullmatch(r"-?\d{1,30}", gold.strip()):
            return True
        try:
            return self.ask(["parse", gold]) is True
        except RuntimeError as error:  # while reading a task's file: one line, as for any bad input
            raise ValueError(f"task math: {error}") from None

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
            result = self.warn(f"an answer took over {self.timeout:g} s to verify (or crashed it) and scored 0")
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


def serve(timeout):
    """The worker: one JSON request per line on stdin, one JSON reply per line on the original stdout (null: the
    answer ran out of time). It computes nothing itself: a forked child does, and is killed (SIGKILL) and forked
    anew, from the warmed-up worker, when an answer takes over `timeout` seconds or crashes it."""
    import logging
    import resource
    import signal

    replies = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # whatever sympy or math-verify prints goes nowhere
    sys.stdout = sys.stderr
    logging.disable(logging.CRITICAL)
    sys.setrecursionlimit(10_000)
    from math_verify import LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig(boxed_match_priority=0)]

    def parsed(text):
        return parse("\\boxed{" + text + "}", extraction_config=config, parsing_timeout=None)

    def compute(requests, answers):  # the child's loop
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, hard))
        golds = {}
        for line in requests:
            try:
                request = json.loads(line)
                if request[0] == "parse":
                    reply = any(not isinstance(value, str) for value in parsed(request[1]))
                else:
                    gold = golds[request[1]] if request[1] in golds else golds.setdefault(request[1], parsed(request[1]))
                    reply = bool(verify(gold, parsed(request[2]), timeout_seconds=None))
            except BaseException:  # anything odd in an answer is a 0, never the child's end
                reply = False
            answers.write(json.dumps(reply) + "\n")
            answers.flush()

    def fork_child():
        requests_read, requests_write = os.pipe()
        answers_read, answers_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child keeps its own two pipe ends only
            for fd in (requests_write, answers_read, 0, replies.fileno()):
                os.close(fd)
            compute(os.fdopen(requests_read), os.fdopen(answers_write, "w"))
            os._exit(0)
        os.close(requests_read)
        os.close(answers_write)
        return pid, os.fdopen(requests_write, "w"), answers_read

    for text in WARM_UP:  # the first parses pay for lazy imports and fill the LaTeX parser's caches
        parsed(text)
    child = fork_child()
    print("ready", file=replies, flush=True)
    for line in sys.stdin:
        pid, requests, answers = child
        requests.write(line)
        requests.flush()
        reply = os.read(answers, 64) if select.select([answers], [], [], timeout)[0] else b""
        if not reply.endswith(b"\n"):  # late, or the child died (its reply, one short line, comes in one read)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            requests.close()
            os.close(answers)
            child, reply = fork_child(), b"null\n"
        replies.write(reply.decode())
        replies.flush()


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    serve(float(sys.argv[2]))
