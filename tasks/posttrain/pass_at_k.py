"""pass@k with a 95% confidence interval, from n samples per problem.

pass@k per problem uses the unbiased estimator of Chen et al. (2021),
1 - C(n - c, k) / C(n, k) for c correct samples out of n (n >= k); the score is
the mean over problems. The interval is the normal approximation over problems,
mean ± 1.96 * standard error (the problems are the random draw; with hundreds
of problems this is close to a bootstrap interval), clipped to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def pass_at_k_one(n: int, correct: int, k: int) -> float:
    if not 0 <= correct <= n or k < 1 or k > n:
        raise ValueError(f"need 0 <= correct <= n and 1 <= k <= n, got n={n}, correct={correct}, k={k}")
    if n - correct < k:
        return 1.0
    # 1 - prod_{i = n-c+1}^{n} (1 - k / i): the ratio of binomials without big integers.
    miss = 1.0
    for i in range(n - correct + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


@dataclass(frozen=True)
class PassAtK:
    k: int
    value: float
    low: float
    high: float
    problems: int

    def as_dict(self) -> dict[str, float | int]:
        return {f"pass@{self.k}": round(self.value, 4), f"pass@{self.k}_ci95_low": round(self.low, 4),
                f"pass@{self.k}_ci95_high": round(self.high, 4)}


def pass_at_k(correct_counts: Sequence[int], n: int, k: int) -> PassAtK:
    if not correct_counts:
        raise ValueError("no problems to score")
    values = [pass_at_k_one(n, c, k) for c in correct_counts]
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)
    half = 1.96 * math.sqrt(var / len(values))
    return PassAtK(k, mean, max(0.0, mean - half), min(1.0, mean + half), len(values))
