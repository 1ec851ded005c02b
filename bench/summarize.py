"""Turns the JSON lines of `encoder-bench bench --json` (rust.jsonl) and
`bench/reference.py` (python.jsonl) into the results table of issue 6:
per model, MAX_LEN, precision and figure, the median samples/s of each side
and the ratios Rust / Python, and the fp32 training FLOP/s as a fraction of
the run's 2048^3 matmul, for Rust (`flops_fraction`) and, for context, for the
Python pipelines (`flops_fraction_python`). Python's figure counts the same
model FLOPs per sample as the Rust side (`train_flops_per_sample`): the same
work at MAX_LEN 64, where every text is truncated; at 512 the seed pipeline
also computes its padding, which no model count includes.

    .venv/bin/python bench/summarize.py DIR --machine "2-core CPU" [--date YYYY-MM-DD] [--out bench/results/latest.json]
"""
import argparse
import json
import pathlib
import statistics
import time


def read(path):
    p = pathlib.Path(path)
    return [json.loads(line) for line in p.read_text().splitlines() if line.startswith("{")] if p.exists() else []


def median(xs):
    return statistics.median(xs) if xs else None


def ratio(a, b):
    return a / b if a is not None and b else None


def summarize(rust, python, machine, date=None):
    def key(r):
        return r["model"], r["config"]["max_len"] if "config" in r else r["max_len"]

    groups = sorted({key(r) for r in rust} | {key(r) for r in python})
    rows, fractions, py_fractions = [], {}, {}
    matmul = median([r["matmul_gflops"] for r in rust + python if r.get("matmul_gflops")])
    for model, max_len in groups:
        py = {v: [r for r in python if key(r) == (model, max_len) and r["variant"] == v] for v in ("seed", "tuned", "bf16")}
        for precision in ("fp32", "bf16"):
            rs = [r for r in rust if key(r) == (model, max_len) and r["config"]["precision"] == precision]
            if not rs and not (precision == "fp32" and (py["seed"] or py["tuned"])) and not (precision == "bf16" and py["bf16"]):
                continue
            for figure in ("train", "eval"):
                f = f"{figure}_samples_per_s"
                rust_v = median([r[f] for r in rs])
                seed_v, tuned_v = median([r[f] for r in py["seed"]]), median([r[f] for r in py["tuned"]])
                bf16_v = median([r[f] for r in py["bf16"]]) if precision == "bf16" else None
                rows.append({
                    "model": model, "max_len": max_len, "precision": precision, "figure": figure,
                    "rust": rust_v, "python_seed": seed_v, "python_tuned": tuned_v, "python_bf16": bf16_v,
                    "ratio_seed": ratio(rust_v, seed_v), "ratio_tuned": ratio(rust_v, tuned_v), "ratio_bf16": ratio(rust_v, bf16_v),
                    "rust_padding": rs[0]["config"]["padding"] if rs else None,
                    "python_tuned_padding": py["tuned"][0].get("padding") if py["tuned"] else None,
                    "runs": {"rust": len(rs), "python_seed": len(py["seed"]), "python_tuned": len(py["tuned"]),
                             "python_bf16": len(py["bf16"]) if precision == "bf16" else 0},
                    "rust_peak_rss_mib": max((r["peak_rss_mib"] or 0 for r in rs), default=None),
                    "python_peak_rss_mib": max((r["peak_rss_mib"] for v in py.values() for r in v), default=None),
                })
            if precision == "fp32" and rs and matmul:
                fractions[f"{model}@{max_len}"] = median([r["train_gflops"] for r in rs]) / matmul
                per_sample = median([r["train_flops_per_sample"] for r in rs])
                py_fractions[f"{model}@{max_len}"] = {
                    v: median([r["train_samples_per_s"] for r in py[v]]) * per_sample / 1e9 / matmul for v in ("seed", "tuned") if py[v]
                }
    return {"machine": machine, "date": date or time.strftime("%Y-%m-%d"), "rows": rows, "matmul_gflops": matmul,
            "flops_fraction": fractions, "flops_fraction_python": py_fractions}


def table(s):
    fmt = lambda x, p=1: "-" if x is None else f"{x:.{p}f}"
    lines = [f"{'model':<22}{'len':>5} {'prec':<5}{'fig':<6}{'rust':>9}{'py seed':>9}{'py tuned':>9}{'py bf16':>9}{'r/seed':>8}{'r/tuned':>8}{'r/bf16':>8}"]
    for r in s["rows"]:
        lines.append(f"{r['model']:<22}{r['max_len']:>5} {r['precision']:<5}{r['figure']:<6}{fmt(r['rust']):>9}{fmt(r['python_seed']):>9}"
                     f"{fmt(r['python_tuned']):>9}{fmt(r['python_bf16']):>9}{fmt(r['ratio_seed'], 2):>8}{fmt(r['ratio_tuned'], 2):>8}{fmt(r['ratio_bf16'], 2):>8}")
    lines.append(f"matmul fp32: {fmt(s['matmul_gflops'])} GFLOP/s; model FLOP/s in training as a fraction of it: "
                 + ", ".join(f"{k} {v:.0%}" for k, v in s["flops_fraction"].items()))
    py = s.get("flops_fraction_python", {})
    if any(py.values()):
        lines.append("Python's, counted the same way: " + ", ".join(
            f"{k} " + "/".join(f"{v:.0%} {variant}" for variant, v in f.items()) for k, f in py.items() if f))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--machine", required=True)
    ap.add_argument("--date", help="the run's date (default: today)")
    ap.add_argument("--out")
    a = ap.parse_args()
    d = pathlib.Path(a.dir)
    s = summarize(read(d / "rust.jsonl"), read(d / "python.jsonl"), a.machine, a.date)
    print(table(s))
    if a.out:
        out = pathlib.Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(s, indent=1) + "\n")
        tmp.replace(out)


if __name__ == "__main__":
    main()
