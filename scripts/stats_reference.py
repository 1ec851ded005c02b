"""Writes tests/fixtures/stats_reference.json: the reference values that
`tests/stats.rs` compares `encoder_bench::report::stats` against.

Run from the repository root:
    .venv/bin/python scripts/stats_reference.py

- Summaries: mean and sample standard deviation (ddof=1) from Python's
  `statistics` module, which sums exactly, and the two-sided Student-t interval
  mean +- t.ppf((1 + level) / 2, n - 1) * sd / sqrt(n) with scipy's quantile.
- McNemar's exact test: `scipy.stats.binomtest(min(b, c), b + c, 0.5)`, two-sided,
  checked here against the exact sum of binomial coefficients in integers.

Sample values are written with at most 6 decimals so that any float parser
reads back exactly the doubles used here; the results are written with
`repr`, i.e. shortest round-trip. The file is small and committed; CI does not
run this script.
"""
import json
import math
import pathlib
import statistics
from fractions import Fraction

import numpy as np
import scipy
from scipy.stats import binomtest, t

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "stats_reference.json"


def samples():
    rng = np.random.default_rng(20250117)
    yield "n2", [0.81, 0.84], 0.95
    yield "n3", [0.5, 0.75, 0.6], 0.95
    yield "five_seeds", [0.8123, 0.8091, 0.8156, 0.8102, 0.8134], 0.95
    yield "five_seeds_90", [0.8123, 0.8091, 0.8156, 0.8102, 0.8134], 0.90
    yield "five_seeds_99", [0.8123, 0.8091, 0.8156, 0.8102, 0.8134], 0.99
    # sd 0: the interval collapses onto the mean.
    yield "constant", [0.5] * 7, 0.95
    yield "mixed_sign", [-3.25, 1.5, 0.0, 2.75, -0.125, 4.0, -1.0, 0.5], 0.95
    # A large common offset: a one-pass sum of squares loses every digit here.
    yield "offset", [round(1e6 + x, 6) for x in rng.normal(0.0, 0.01, size=20)], 0.95
    yield "large_n", [round(float(x), 4) for x in rng.normal(0.8, 0.05, size=5000)], 0.95
    yield "large_n_bernoulli", [float(x) for x in (rng.random(4000) < 0.73)], 0.99


def summary(xs, level):
    n = len(xs)
    mean = statistics.fmean(xs)
    sd = statistics.stdev(xs)
    q = float(t.ppf((1.0 + level) / 2.0, n - 1))
    half = q * sd / math.sqrt(n)
    return {"mean": mean, "sd": sd, "t_quantile": q, "ci_low": mean - half, "ci_high": mean + half}


# (b, c): discordant pairs, A right and B wrong / A wrong and B right.
TABLES = [
    (0, 0),
    (1, 0),
    (10, 0),
    (0, 10),
    (5, 5),
    (3, 7),
    (8, 9),
    (25, 40),
    (100, 130),
    (1000, 1100),
    (30000, 30500),
    (30500, 30000),
    (49000, 51000),
    (50000, 50000),
    (20000, 26985),
    # Near the centre the incomplete beta's continued fraction converges
    # slowest: p-values between 0.05 and 1 at the largest sizes.
    (499, 501),
    (23400, 23585),
    (49500, 50500),
    (49900, 50100),
    (49990, 50010),
    (49999, 50001),
    (99000, 101000),
    (100000, 100800),
]


def exact_mcnemar(b, c):
    """min(1, 2 * P(X <= min(b, c))), X ~ Binomial(b + c, 1/2), in exact integers."""
    n, k = b + c, min(b, c)
    coef, total = 1, 0
    for i in range(k + 1):
        total += coef
        coef = coef * (n - i) // (i + 1)
    return min(1.0, float(Fraction(2 * total, 2**n)))


def main():
    out = {"scipy_version": scipy.__version__, "summaries": [], "mcnemar": []}
    for name, xs, level in samples():
        out["summaries"].append({"name": name, "level": level, "n": len(xs), "xs": xs, **summary(xs, level)})
    for b, c in TABLES:
        p = 1.0 if b + c == 0 else float(binomtest(min(b, c), b + c, 0.5).pvalue)
        exact = exact_mcnemar(b, c)
        assert abs(p - exact) <= 1e-12 * exact, (b, c, p, exact)
        out["mcnemar"].append({"b": b, "c": c, "p_value": p})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One case per line keeps the diffs readable.
    head = json.dumps({"scipy_version": out["scipy_version"]})[:-1]
    summaries = ",\n".join(json.dumps(s) for s in out["summaries"])
    mcnemar = ",\n".join(json.dumps(m) for m in out["mcnemar"])
    OUT.write_text(f'{head}, "summaries": [\n{summaries}\n], "mcnemar": [\n{mcnemar}\n]}}\n')
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
