"""``experiments.patience``: early stopping replayed on logged dev curves."""

import pytest

from experiments.patience import Curve, cap_table, markdown, patience_table, stopped


def test_replayed_early_stopping_keeps_the_best_so_far_and_stops_after_patience_flat_epochs():
    scores = (0.50, 0.60, 0.59, 0.58, 0.70, 0.69, 0.68, 0.67)
    assert stopped(scores, patience=2) == (4, 0.60)  # epochs 3 and 4 bring no gain
    assert stopped(scores, patience=3) == (8, 0.70)  # the gain at epoch 5 is seen
    assert stopped(scores, patience=3, cap=3) == (3, 0.60)


def test_the_tables_show_what_a_small_patience_costs_and_how_often_a_cap_cuts():
    bumpy = Curve("es-5", "upsample-20x", "1", (0.5, 0.6, 0.59, 0.58, 0.9) + (0.85,) * 10)
    slow = Curve("th-5", "none", "1", tuple(0.5 + 0.01 * i for i in range(15)) + (0.6,) * 5)
    quick = Curve("de", "none", "1", (0.7, 0.8) + (0.79,) * 10)
    rows = {row["patience"]: row for row in patience_table([bumpy, slow, quick])}
    assert rows[2]["mean_loss"] == pytest.approx(10.0) and rows[2]["max_loss"] == pytest.approx(30.0)
    assert rows[3]["mean_loss"] == 0.0 and rows[3]["within_half_point"] == 1.0
    caps = {row["cap"]: row["cap_hits"] for row in cap_table([bumpy, slow, quick], patience=3)}
    assert caps[12] == pytest.approx(1 / 3) and caps[20] == 0.0  # slow needs 18 epochs
    assert "| es-5 | upsample-20x | 1 | 15 | 5 | 90.00 |" in markdown([bumpy, slow, quick], 3)
