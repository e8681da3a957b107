"""pass@k: the unbiased estimator against brute force, and its interval."""

from __future__ import annotations

import itertools
import math

import pytest

from tasks.posttrain.pass_at_k import pass_at_k, pass_at_k_one


@pytest.mark.parametrize("n,c,k", [(5, 2, 1), (5, 2, 3), (6, 0, 2), (6, 6, 4), (8, 3, 8), (16, 5, 16)])
def test_estimator_equals_the_fraction_of_k_subsets_with_a_correct_sample(n: int, c: int, k: int) -> None:
    samples = [1] * c + [0] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    brute = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
    assert math.isclose(pass_at_k_one(n, c, k), brute, abs_tol=1e-12)


def test_pass_at_1_is_the_mean_accuracy_with_an_interval() -> None:
    result = pass_at_k([4, 0, 8, 2], n=8, k=1)
    assert math.isclose(result.value, (4 + 0 + 8 + 2) / 32)
    assert result.low < result.value < result.high
    assert pass_at_k([3] * 10, n=8, k=1).low == pytest.approx(3 / 8)  # no spread, no width


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        pass_at_k_one(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k([], 4, 1)
