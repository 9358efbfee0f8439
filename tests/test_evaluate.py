"""Tests for evaluate.py."""
import math

import pytest
import torch
from hypothesis import given, strategies as st

from evaluate import pass_at_k


@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(0, n))))
def test_pass_at_k_matches_binomials(case):
    n, c, k = case
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)


def test_pass_at_k_edge_cases_and_tensors():
    assert pass_at_k(10, 0, 5) == 0.0 and pass_at_k(10, 6, 5) == 1.0 and pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(1000, 1, 999) == pytest.approx(0.999)  # no overflow for large n
    counts = torch.tensor([[0.0], [3.0], [10.0]])
    expected = torch.tensor([[0.0], [1 - math.comb(7, 4) / math.comb(10, 4)], [1.0]], dtype=torch.float64)
    torch.testing.assert_close(pass_at_k(10, counts, 4), expected)


def test_pass_at_k_errors():
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="correct samples"):
        pass_at_k(4, 5, 2)
    with pytest.raises(ValueError, match="integer"):
        pass_at_k(4.0, 1, 2)
