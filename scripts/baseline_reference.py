"""Writes tests/fixtures/baseline_reference.json: scikit-learn's TF-IDF +
logistic regression on the WOS sample, the reference `tests/baseline.rs`
compares `encoder_bench::train::baseline` against (issue 17).

Run from anywhere:
    .venv/bin/python scripts/baseline_reference.py

The model is `TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2))` followed
by `LogisticRegression(max_iter=2000)`, everything else at scikit-learn's
defaults. The folds are stratified without randomness, so the Rust test can
rebuild them: text i goes to fold (rank of i among the texts of its class, in
file order) % 5. For each fold the model is fitted on the other four and the
test indices, predictions and accuracy are recorded.

The vectorizer is also checked entry by entry: on fold 0 (vocabulary size,
non-zeros of the training and test matrices, a few test-matrix values) and on
a tiny hand-made corpus whose whole tf-idf matrix is written out. The tiny
corpus has non-ASCII text on purpose, to pin down what `\\w` and lowercasing
mean. The file is small and committed; CI does not rerun Python.
"""
import json
import pathlib

import numpy as np
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "wos-sample"
OUT = ROOT / "tests" / "fixtures" / "baseline_reference.json"
N_FOLDS = 5

# Repeated words (sublinear tf), one-letter words (dropped), digits,
# underscores, punctuation, accents precomposed and combining (U+0301 is not
# \w in Python, so it splits "cafe\u0301"), a superscript digit (\w in Python),
# an upper-case sigma and a text without any token.
TINY = [
    "The cat sat on the mat. The cat purred.",
    "A dog chased the cat; the dog barked, barked, barked!",
    "Caf\u00e9 na\u00efve cafe\u0301 x\u00b2 snake_case 42 is 7 a b",
    "\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3 and the Mat",
    "? ! ...",
]


def read_lines(path):
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def folds_of(labels):
    seen = {}
    folds = []
    for y in labels:
        rank = seen.get(y, 0)
        seen[y] = rank + 1
        folds.append(rank % N_FOLDS)
    return np.array(folds)


def vectorizer():
    return TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2))


def tiny_case():
    vec = vectorizer()
    m = vec.fit_transform(TINY)
    terms = vec.get_feature_names_out().tolist()
    return {
        "texts": TINY,
        "vocabulary": terms,
        "idf": vec.idf_.tolist(),
        "matrix": m.toarray().tolist(),
    }


def entries(matrix, terms):
    """A handful of (row, term, value) of a CSR matrix: for a few rows, the
    first and last stored entries and the largest one."""
    out = []
    m = matrix.tocsr()
    m.sort_indices()
    for row in [0, 1, 7, 20, m.shape[0] - 1]:
        lo, hi = m.indptr[row], m.indptr[row + 1]
        picks = {lo, hi - 1, lo + int(np.argmax(m.data[lo:hi]))}
        for k in sorted(picks):
            out.append({"row": row, "term": terms[m.indices[k]], "value": float(m.data[k])})
    return out


def main():
    texts = read_lines(DATA / "X.txt")
    labels = np.array([int(x) for x in read_lines(DATA / "YL1.txt")])
    assert len(texts) == len(labels) == 210, (len(texts), len(labels))
    folds = folds_of(labels)

    out = {
        "sklearn_version": sklearn.__version__,
        "model": "TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2)) + LogisticRegression(max_iter=2000)",
        "data": "../shared/data/wos-sample",
        "n_texts": len(texts),
        "n_folds": N_FOLDS,
        "tiny": tiny_case(),
        "folds": [],
    }
    for f in range(N_FOLDS):
        train = np.flatnonzero(folds != f)
        test = np.flatnonzero(folds == f)
        vec = vectorizer()
        x_train = vec.fit_transform([texts[i] for i in train])
        x_test = vec.transform([texts[i] for i in test])
        clf = LogisticRegression(max_iter=2000).fit(x_train, labels[train])
        pred = clf.predict(x_test)
        acc = float(np.mean(pred == labels[test]))
        out["folds"].append(
            {
                "fold": f,
                "test_indices": test.tolist(),
                "predictions": pred.tolist(),
                "accuracy": acc,
                "n_iter": int(clf.n_iter_[0]),
            }
        )
        if f == 0:
            terms = vec.get_feature_names_out().tolist()
            out["vectorizer_fold0"] = {
                "vocabulary_size": len(terms),
                "train_nnz": int(x_train.nnz),
                "test_nnz": int(x_test.nnz),
                "test_entries": entries(x_test, terms),
            }
        print(f"fold {f}: accuracy {acc:.4f} ({clf.n_iter_[0]} L-BFGS iterations)")
    out["mean_accuracy"] = float(np.mean([f["accuracy"] for f in out["folds"]]))
    print(f"mean accuracy {out['mean_accuracy']:.4f}")
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
