"""lab/verdicts.py: corrected p-values, equivalence, the verdict rule and the families, on fake records."""
import os

import numpy as np
import pytest

from fake_runs import fake_record, primary_records
from lab import grids, stats, verdicts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_verdicts_correct_for_multiplicity_and_test_equivalence():
    start = {"5": [2, 2, 2, 2], "9": [0, 1, 0, 0]}
    records = []
    for seed in range(6):
        records.append(fake_record("e/a", seed, start, {"5": [2, 2, 2, 2 + seed % 2], "9": [0, 0, 0, 0]}))
        # b: much better pass@8 on every item and seed, alike (so with items random too); pass@1 the same as a within a few tenths of a point
        records.append(fake_record("e/b", seed, start, {"5": [4, 4, 4, 4 + seed % 2], "9": [1, 1, 1, 1]},
                                   entropy=0.3 + 0.01 * (seed % 2)))
    family = [("t", "g", "e/b", "e/a", "p@8", None, None), ("t", "g", "e/b", "e/a", "entropy", None, None),
              ("t", "g", "e/b", "e/a", "p@1", ["9"], None), ("t", "g", "e/a", "e/a", "p@1", None, 0.02),
              ("t", "g", "e/b", "e/a", "p@1", None, 0.02)]
    results = verdicts.evaluate_comparisons(records, family)
    raw = [r["t"]["p"] for r in results[:3]]
    holm = verdicts.evaluate_comparisons(records, family, correction="holm")
    assert [r["p_adjusted"] for r in holm[:3]] == pytest.approx(list(stats.holm([r["crossed"]["p"] for r in holm[:3]])))
    crossed = [r["crossed"]["p"] for r in results[:3]]
    assert [r["p_adjusted"] for r in results[:3]] == pytest.approx(list(stats.benjamini_hochberg(crossed)))
    assert results[1]["crossed"]["p"] == pytest.approx(raw[1])  # entropy, one value a seed: the paired t
    assert verdicts.verdict(results[0]) == "shown (+)" and results[0]["crossed"]["lo"] > 0
    assert verdicts.verdict(results[1]) == "not shown"  # entropy +0.005 with a spread: not significant
    assert verdicts.verdict(results[3]) == "within ±2"  # a method against itself: exactly equivalent
    assert results[4]["t"]["mean"] > 0.02 and verdicts.verdict(results[4]) == "not shown"  # b's pass@1 is 6+ points up
    table = verdicts.verdict_table(results)
    assert table.count("\n") == 6 and "| e/b - e/a |" not in table and "| b - a | p@8 | 6 |" in table
    assert "TOST" in table and "(seeds only)" in table and "p@1 (9)" in table


def test_a_gain_on_a_few_items_is_not_shown_with_the_items_random():
    """Every seed gains pass@8 on 3 of 4 items of one group and nothing elsewhere: the paired t over seeds (items
    fixed) has p 0, but another draw of items could hold none of those: the crossed test does not show it."""
    start = {"5": [2, 2, 2, 2], "9": [0, 1, 0, 0]}
    records = []
    for seed in range(6):
        records.append(fake_record("e/a", seed, start, {"5": [2, 2, 2, 2], "9": [0, 1, 0, 0]}))
        records.append(fake_record("e/b", seed, start, {"5": [2, 2, 2, 2], "9": [1, 1, 1, 1]}))
    result = verdicts.evaluate_comparisons(records, [("t", "g", "e/b", "e/a", "p@8", None, None)])[0]
    assert result["t"]["p"] < 0.001 and result["crossed"]["p"] > 0.05 and verdicts.verdict(result) == "not shown"
    assert result["crossed"]["seed"] == 0 and result["crossed"]["item"] > 0


def test_the_verdict_families_name_runs_of_the_committed_records():
    for path in ("experiments/results/long.jsonl", "experiments/results/tasks.jsonl"):
        assert os.path.exists(os.path.join(ROOT, path)), path
    runs = {"long": {run for entries in grids.LONG.values() for _, run in entries}}
    for _, grid, b, a, metric, groups, margin in verdicts.exploratory_family():
        if grid == "long":
            assert b.removeprefix("start:") in runs["long"] and a.removeprefix("start:") in runs["long"]
        assert metric in ("p@1", "p@8", "p@128") or metric in verdicts.METRICS


def test_the_replication_is_the_primary_family_on_its_own_record():
    """experiments/maze.py --replication records grid 'replication' with the family's run names: the same Holm
    family, the same table, kept apart from the original's."""
    original = verdicts.verdict_tables(primary_records())
    tables = verdicts.verdict_tables([dict(record, grid="replication") for record in primary_records()])
    assert set(tables) == {"replication", "replication-familywise"}
    assert tables["replication"] == original["primary"]
    assert tables["replication-familywise"] == original["primary-familywise"]


def test_the_primary_family_is_holm_corrected_and_pools_items():
    records = primary_records()
    tables = verdicts.verdict_tables(records)
    assert set(tables) == {"primary", "primary-familywise", "primary-exploratory"}
    assert "familywise error over all 20 claims together is at most 0.10" in tables["primary-familywise"]
    exploratory = tables["primary-exploratory"].splitlines()[2:]
    assert len(exploratory) == len(verdicts.PRIMARY_EXPLORATORY) == 34 and "BH q" in tables["primary-exploratory"]
    assert exploratory[0].startswith("| precondition: Pass@1 narrows | pass1 - start of pass1 | p@128 (all items) | 4 |")
    assert "| passk_analytical - entropy0.1 | p@8 (all items) | 4 |" in tables["primary-exploratory"]
    rows = tables["primary"].splitlines()[2:]
    assert len(rows) == 20 and rows[0].startswith("| H1 | passk_analytical - pass1 | p@8 (all items) | 4 |")
    assert "Holm p" in tables["primary"] and rows[10].startswith("| H11 |") and "p@128 (9, 11)" in rows[10]
    results = verdicts.evaluate_comparisons(records, verdicts.PRIMARY_FAMILY, correction="holm")
    index = {}
    for record in records:
        index.setdefault(record["run"], {})[record["seed"]] = record
    seeds, deltas, items, weights = verdicts.comparison_values(index, "primary/pkpo", "primary/pass1", "p@8", "pooled")
    assert weights == {5: 2, 9: 6, 11: 2}  # items per group: the mean over every held-out item
    per_item = np.concatenate([items[g] for g in (5, 9, 11)], axis=1)
    assert deltas == pytest.approx(list(per_item.mean(1)))
    assert results[3]["t"]["mean"] == pytest.approx(np.mean(deltas))  # H4 is PKPO's pass@8
    assert all("p_adjusted" in r["tost"] for r in results[15:])
