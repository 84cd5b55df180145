"""The pilot's calibration: leave-one-task-out lines from a signal to the measured gap, and their agreement."""

from __future__ import annotations

import math

import pytest

from synthbench.pilot.calibration import Pair, agreement, leave_one_task_out


def pairs_on_a_line(slope: float = 2.0, intercept: float = 5.0) -> list[Pair]:
    """Four tasks, two modes each, whose actual gap is exactly ``intercept + slope · signal``."""
    out = []
    for t in range(4):
        for m, mode in enumerate(("zero_shot", "few_shot")):
            x = float(3 * t + m)
            out.append(Pair(f"task{t}", mode, {"s": x}, intercept + slope * x))
    return out


def test_an_exact_line_is_recovered_for_every_held_out_task() -> None:
    pairs = pairs_on_a_line()
    predicted = leave_one_task_out(pairs, "s")
    assert predicted == pytest.approx([p.actual for p in pairs])
    rho, mae, used = agreement(predicted, [p.actual for p in pairs])
    assert rho == pytest.approx(1.0) and mae == pytest.approx(0.0) and used == 8


def test_the_held_out_tasks_own_pairs_never_inform_its_prediction() -> None:
    pairs = pairs_on_a_line()
    # task0's gaps move far off the line: only task0's predictions may stay as they were
    moved = [Pair(p.task, p.mode, p.signals, p.actual + 100) if p.task == "task0" else p for p in pairs]
    before, after = leave_one_task_out(pairs, "s"), leave_one_task_out(moved, "s")
    assert after[:2] == pytest.approx(before[:2])  # task0 predicted from tasks 1–3 only
    assert all(abs(a - b) > 1 for a, b in zip(after[2:], before[2:], strict=True))  # the others saw it


def test_by_hand_on_three_tasks() -> None:
    # held out "a": the line through b (1, 1), c (2, 3) and d (3, 5) is y = 2x − 1, so at x = 0 it says −1
    pairs = [
        Pair("a", "zero_shot", {"s": 0.0}, 10.0),
        Pair("b", "zero_shot", {"s": 1.0}, 1.0),
        Pair("c", "zero_shot", {"s": 2.0}, 3.0),
        Pair("d", "zero_shot", {"s": 3.0}, 5.0),
    ]
    assert leave_one_task_out(pairs, "s")[0] == pytest.approx(-1.0)
    rho, mae, _ = agreement([-1.0, 1.0, 3.0, 5.0], [10.0, 1.0, 3.0, 5.0])
    assert mae == pytest.approx(11 / 4) and rho == pytest.approx(-0.2)  # ranks 1234 vs 4123


def test_a_missing_signal_is_left_out_of_the_fits_and_unpredicted() -> None:
    pairs = pairs_on_a_line()
    pairs[3] = Pair(pairs[3].task, pairs[3].mode, {"s": math.nan}, pairs[3].actual)
    predicted = leave_one_task_out(pairs, "s")
    assert math.isnan(predicted[3])
    others = [i for i in range(8) if i != 3]
    assert [predicted[i] for i in others] == pytest.approx([pairs[i].actual for i in others])
    assert agreement(predicted, [p.actual for p in pairs])[2] == 7


def test_a_signal_without_spread_predicts_the_other_tasks_mean_gap() -> None:
    pairs = [Pair(f"t{i}", "zero_shot", {"s": 0.5}, float(i)) for i in range(4)]
    assert leave_one_task_out(pairs, "s")[0] == pytest.approx((1 + 2 + 3) / 3)
    rho, _, _ = agreement(leave_one_task_out(pairs, "s"), [p.actual for p in pairs])
    assert rho == pytest.approx(-1.0)  # the mean of the others falls as a task's own gap rises
