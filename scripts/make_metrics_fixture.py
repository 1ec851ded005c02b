"""Writes tests/fixtures/metrics.json: scikit-learn's classification metrics on a
few small cases, the reference `tests/metrics.rs` compares `Metrics` against.

Run from the repository root:
    .venv/bin/python scripts/make_metrics_fixture.py

Every call uses `labels=range(num_classes)` and `zero_division=0`, the
semantics `Metrics::compute` implements. The file is small and committed.
"""
import json
import pathlib
import warnings

import numpy as np
import sklearn
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "metrics.json"


def noisy(rng, targets, num_classes, p_correct):
    """Predictions that equal the target with probability p_correct."""
    wrong = rng.integers(0, num_classes, size=len(targets))
    keep = rng.random(len(targets)) < p_correct
    return np.where(keep, targets, wrong)


def cases():
    rng = np.random.default_rng(20240607)

    t = rng.integers(0, 7, size=300)
    yield "random_7", 7, t, noisy(rng, t, 7, 0.6), None

    # Class 3 is never predicted: its precision must be 0, not NaN.
    t = rng.integers(0, 7, size=120)
    p = noisy(rng, t, 7, 0.5)
    p[p == 3] = 4
    yield "never_predicted", 7, t, p, None

    # Class 5 never occurs in the targets (recall 0) but is predicted; class 6
    # occurs nowhere and still counts in the macro average. Long names widen
    # the report's first column.
    t = rng.integers(0, 5, size=80)
    p = noisy(rng, t, 7, 0.7)
    p[:3] = 5
    names = ["Computer Science", "ECE", "Psychology", "MAE", "Civil", "Medical", "biochemistry"]
    yield "absent_from_targets", 7, t, p, names

    t = rng.integers(0, 4, size=40)
    yield "perfect", 4, t, t.copy(), None

    # Only two labels appear, so scikit-learn sees a binary problem.
    t = np.array([0, 2, 2, 0, 2, 0, 0, 2])
    p = np.array([0, 2, 0, 0, 2, 2, 0, 2])
    yield "binary_in_three", 3, t, p, ["a", "b", "c"]


def main():
    out = {"sklearn_version": sklearn.__version__, "cases": []}
    for name, k, t, p, names in cases():
        labels = list(range(k))
        if names is None:
            names = [f"class_{i}" for i in labels]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prec, rec, f1, sup = precision_recall_fscore_support(
                t, p, labels=labels, average=None, zero_division=0
            )
            avg = {}
            for a in ("macro", "weighted"):
                ap, ar, af, _ = precision_recall_fscore_support(
                    t, p, labels=labels, average=a, zero_division=0
                )
                avg[a] = {
                    "precision": float(ap),
                    "recall": float(ar),
                    "f1": float(af),
                    "f1_score": float(f1_score(t, p, labels=labels, average=a, zero_division=0)),
                }
            report = classification_report(
                t, p, labels=labels, target_names=names, zero_division=0
            )
        out["cases"].append(
            {
                "name": name,
                "num_classes": k,
                "targets": [int(x) for x in t],
                "preds": [int(x) for x in p],
                "accuracy": float(accuracy_score(t, p)),
                "precision": [float(x) for x in prec],
                "recall": [float(x) for x in rec],
                "f1": [float(x) for x in f1],
                "support": [int(x) for x in sup],
                "macro": avg["macro"],
                "weighted": avg["weighted"],
                "confusion": confusion_matrix(t, p, labels=labels).tolist(),
                "names": names,
                "report": report,
            }
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One case per line keeps the file small and its diffs readable.
    head = json.dumps({"sklearn_version": out["sklearn_version"]})[:-1]
    body = ",\n".join(json.dumps(c) for c in out["cases"])
    OUT.write_text(f'{head}, "cases": [\n{body}\n]}}\n')
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
