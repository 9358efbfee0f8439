"""lab/figures.py: the advantage figures from advantage.py alone."""
import math

import torch

from advantage import ADVANTAGES, advantage_curves
from lab import figures


def test_advantage_figure_has_every_estimator(tmp_path):
    path = tmp_path / "advantage_curves.png"
    names = figures.plot_advantage_curves(str(path), n_rollouts=8, k=4)
    assert names == list(ADVANTAGES)
    assert path.stat().st_size > 10_000
    figures.plot_advantage_k(str(tmp_path / "k.png"), n_rollouts=8)
    assert (tmp_path / "k.png").exists()


def test_expected_curves_match_advantage_curves_where_deterministic():
    for name in ("pass1", "passk_analytical", "passk_exceeding", "passk_combination", "pass1_no_easy"):
        assert torch.allclose(figures.expected_curves(name, 8, 4), torch.stack(advantage_curves(name, 8, 4)), equal_nan=True)
    # averaged over random orders, full sampling is a mean advantage: positive for correct responses
    a_pos, a_neg, eta = figures.expected_curves("passk_full", 8, 4, draws=20)
    assert math.isnan(a_pos[0]) and math.isnan(a_neg[-1])
    assert (a_pos[1:-1] >= 0).all() and (a_neg[1:-1] <= 0).all() and eta[0] == 0 and eta[-1] == 0
