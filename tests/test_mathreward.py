"""mathreward.py: math-verify on the last \\boxed{}, 0 or 1 for any response, in bounded time, quietly."""
import time

import pytest

from mathreward import TIMEOUT_SECONDS, MathVerifier, last_boxed, rejected


@pytest.fixture(scope="module")
def default():
    """The verifier tasks use (TIMEOUT_SECONDS), its worker started before anything is timed. A right answer takes
    1-300 ms even on a loaded CPU, far inside the timeout."""
    verifier = MathVerifier().wait_ready()
    yield verifier
    verifier.close()


@pytest.mark.parametrize("gold, response, expected", [
    ("\\frac{1}{2}", "so it is \\boxed{0.5}.", 1.0),
    ("0.5", "\\boxed{\\frac{1}{2}}", 1.0),
    ("\\frac{\\sqrt{2}}{2}", "\\boxed{\\sqrt{2}/2}", 1.0),
    ("\\{1,2,3\\}", "\\boxed{\\{3,1,2\\}}", 1.0),
    ("1, 2, 3", "\\boxed{3, 2, 1}", 1.0),
    ("42", "first \\boxed{41}, then \\boxed{42}", 1.0),  # the last box counts
    ("42", "\\boxed{42} and later \\boxed{41}", 0.0),
    ("42", "\\boxed{43}", 0.0),
    ("\\frac{1}{2}", "\\boxed{\\frac{1}{3}}", 0.0),
    ("(1,2)", "\\boxed{(2,1)}", 0.0),  # an interval or a point: order matters
    ("42", "the answer is 42", 0.0),  # no box, no answer
    ("42", "\\boxed{42", 0.0),  # never closed
])
def test_equivalent_forms_score_one_and_wrong_values_zero(default, gold, response, expected):
    assert default.reward(response, gold) == expected


def test_last_boxed_balances_braces_and_skips_escaped_ones():
    assert last_boxed("\\boxed{1} \\boxed{\\frac{a}{b}}") == "\\frac{a}{b}"
    assert last_boxed("\\boxed{\\{1,2\\}}") == "\\{1,2\\}"
    assert last_boxed("\\boxed{}") == "" and last_boxed("\\boxed{1") is None and last_boxed(None) is None
    assert rejected("2^{10}+\\frac{10!}{2!}") is None and rejected("x^2+y^2") is None
    assert [rejected(text) for text in ("9^{9^{9}}", "a^b^c", "10^{99999999}", "(1000!)!", "(" * 7 + ")" * 7)] == [
        "power tower", "power tower", "huge exponent", "big factorial", "nested too deep"]


LONG = "x" * 100_000
HOSTILE = [  # (response, gold 1/2's reward)
    ("\\boxed{9^{9^{9^{9}}}}", 0.0),  # an integer of >10^8 digits
    ("\\boxed{" + "(" * 5000 + "1" + ")" * 5000 + "}", 0.0),  # past Python's recursion limit
    ("\\boxed{10^10^10}", 0.0), ("\\boxed{10^{10^{10}}}", 0.0), ("\\boxed{10^{99999999}}", 0.0),
    ("\\boxed{(10^{9})!}", 0.0), ("\\boxed{a^b^c^d}", 0.0),
    ("\\boxed{\\sum_{n=1}^{9999} n^{9999}}", 0.0),  # passes every pre-check: only the worker's timeout stops it
    ("\\boxed{" + "{" * 6 + "1" + "}" * 6 + "}", 0.0),  # deep enough to be slow, shallow enough to be parsed
    ("\\boxed{\\left(1}", 0.0), ("\\boxed{\\left(\\frac{1}{2}}", 1.0), ("\\boxed{\\right)}", 0.0),
    ("\\boxed{½}", 0.0), ("\\boxed{√2}", 0.0), ("\\boxed{١٢}", 0.0), ("\\boxed{\x00}", 0.0), ("\\boxed{🙂}", 0.0),
    ("\\boxed{}", 0.0), ("\\boxed{", 0.0), ("}\\boxed{}}}{", 0.0), ("\\boxed{\\boxed{0.5}}", 1.0),
    ("\\boxed{1}\\boxed{\\frac12}", 1.0), ("\\boxed{0.5}" + "}" * 1000, 1.0),
    (LONG + "\\boxed{1/2}", 1.0), ("\\boxed{" + LONG + "}", 0.0), ("\\boxed{" + "1" * 299 + "}", 0.0),
    ("\\boxed{" + "x" * 299 + "}", 0.0), ("\\boxed{" + "\\frac{1}{2}" * 27 + "}", 0.0),
    ("\\boxed{\\frac{1}{0}}", 0.0), ("\\boxed{\\infty}", 0.0), ("\\boxed{nan}", 0.0), ("\\boxed{\\text{half}}", 0.0),
    (None, 0.0), (42, 0.0), (b"\\boxed{0.5}", 0.0), (["\\boxed{0.5}"], 0.0),
]


def test_hostile_answers_score_zero_or_one_in_bounded_time_and_quietly(default, capfd):
    times = []
    for response, expected in HOSTILE:
        start = time.monotonic()
        reward = default.reward(response, "\\frac{1}{2}")
        times.append(time.monotonic() - start)
        assert reward == expected, (str(response)[:60], reward)
    worst = max(range(len(times)), key=times.__getitem__)
    print(f"worst reward time {times[worst]:.2f} s ({str(HOSTILE[worst][0])[:40]!r}); timeout {TIMEOUT_SECONDS} s")
    # the sum ran into the timeout: that call took the timeout, the call after it found a fresh fork at once
    assert TIMEOUT_SECONDS <= times[worst] < TIMEOUT_SECONDS + 1.0
    assert sorted(times)[-2] < TIMEOUT_SECONDS  # only one answer met the timeout
    err = capfd.readouterr().err
    assert len(err.splitlines()) <= 1 and len(err) < 200 and "9999" not in err, err  # one short line at most
    assert default.reward("\\boxed{0.5}", "1/2") == 1.0  # the verifier still works after a kill


def test_a_thread_may_call_the_reward(default):
    """math-verify's own timeout (signal.alarm) works only on the main thread; this bound works on any."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        rewards = list(pool.map(lambda text: default.reward(text, "12"), ["\\boxed{12}", "\\boxed{13}", "\\boxed{12.0}"]))
    assert rewards == [1.0, 0.0, 1.0]
