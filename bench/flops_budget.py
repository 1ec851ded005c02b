"""How high can training's model FLOP/s go on this machine? An upper bound,
measured, for issue 6's target "model FLOP/s in training >= 75% of a 2048^3
fp32 matmul".

One fp32 training step at batch B, length L must at least run
  - its matrix products: per layer the four linear maps (query/key/value fused,
    attention output, the two feed-forward maps) forward and both backward
    products (input and weight gradients), and attention's two batched
    products forward and four backward (ELECTRA adds `embeddings_project`);
  - the Adam update of every trainable parameter (libtorch's fused CPU Adam,
    the fastest implementation torch ships: one pass over weight, gradient and
    both moments);
  - the operations the model's arithmetic cannot do without: LayerNorm, GELU
    and softmax, each forward and backward;
  - and, reported as a second bound, the rest of the arithmetic training with
    dropout on cannot skip: dropout's multiplies, the residual adds, and the bias
    and embedding gradients (the masks' drawing, the loss, all copies and the
    autograd engine are left out, so both bounds are generous).
The products and kernels run two ways, and the faster counts:
  - one after another on the whole batch with all threads (how libtorch runs a
    step);
  - as two concurrent single-threaded streams, each on half the batch (how a
    data-parallel step would split the work over 2 cores; no fork/join per op).
Each piece is repeated on the same buffers (cache-warm, so faster than inside
a real step), and so is the 2048^3 matmul, right before and after each model.
The bound is the model FLOPs (the count `encoder-bench bench` uses, see
src/train/flops.rs) over the sum of the pieces' times, as a fraction of that
matmul figure. A real step that calls libtorch's CPU kernels can only be
slower. Two statistics:
  - "best": every piece and the matmul at their fastest repetition (a quiet
    machine compared with itself; the most generous bound);
  - "bench": pieces at their median and the matmul's mean FLOP/s, the
    statistics the benchmark itself uses for the step and the matmul.
`--rounds N` repeats the whole measurement to show how the shared machine moves it.

    .venv/bin/python bench/flops_budget.py [--rounds 3] [--out bench/results/flops-budget.json]
"""
import argparse
import json
import pathlib
import platform
import statistics
import threading
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = {
    "minilm": ROOT / "models/minilm/config.json",
    "electra-seed": ROOT / "models/electra-seed/config.json",
    "bert-base-random": ROOT / "bench/configs/bert-base.json",
}
# The benchmark's shapes: batch 16 (8 for bert-base), MAX_LEN 64, every WOS text truncated.
BATCH = {"minilm": 16, "electra-seed": 16, "bert-base-random": 8}
TARGET = 0.75


def samples(f, min_s=0.3, min_reps=5):
    """Times of repeated `f()` calls, after two untimed ones."""
    f(), f()
    ts, start = [], time.perf_counter()
    while len(ts) < min_reps or time.perf_counter() - start < min_s:
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return ts


def matmul_gflops(n=2048):
    """(fastest, mean) GFLOP/s of the 2048^3 fp32 matmul."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    ts = samples(lambda: a @ b, min_s=1.0)
    return 2 * n ** 3 / min(ts) / 1e9, 2 * n ** 3 * len(ts) / sum(ts) / 1e9


def linear_ops(t, k, n):
    """Forward, weight-gradient and input-gradient products of a [t,k] -> [t,n] linear map."""
    x, w, b, g = torch.randn(t, k), torch.randn(n, k), torch.randn(n), torch.randn(t, n)
    return [lambda: torch.addmm(b, x, w.t()), lambda: g.t() @ x, lambda: g @ w]


def attention_ops(b, heads, l, d):
    """QK^T and PV forward, and their four gradient products."""
    q, k, p, g = torch.randn(b, heads, l, d), torch.randn(b, heads, l, d), torch.randn(b, heads, l, l), torch.randn(b, heads, l, d)
    qk = lambda: q @ k.transpose(-1, -2)  # [l,d]x[d,l]
    pv = lambda: p @ k  # [l,l]x[l,d]; dV = P^T dO, dQ = dS K and dK = dS^T Q likewise
    dp = lambda: g @ k.transpose(-1, -2)  # dP = dO V^T
    return [qk, dp] + [pv] * 4


def essential_ops(t, h, i, b, heads, l):
    """LayerNorm x2, GELU and softmax of one layer, forward and backward (aten kernels)."""
    x, w, bias = torch.randn(t, h), torch.ones(h), torch.zeros(h)
    out, mean, rstd = torch.native_layer_norm(x, [h], w, bias, 1e-12)
    ln = [lambda: torch.native_layer_norm(x, [h], w, bias, 1e-12),
          lambda: torch.ops.aten.native_layer_norm_backward(out, x, [h], mean, rstd, w, bias, [True, True, True])]
    u = torch.randn(t, i)
    gelu = [lambda: torch.nn.functional.gelu(u), lambda: torch.ops.aten.gelu_backward(u, u)]
    s = torch.randn(b, heads, l, l)
    p = torch.softmax(s, -1)
    sm = [lambda: torch.softmax(s, -1), lambda: torch.ops.aten._softmax_backward_data(p, p, -1, torch.float32)]
    return 2 * ln + gelu + sm


def other_ops(t, h, i, b, heads, l):
    """The rest of one layer's arithmetic that training with dropout cannot skip: the three
    dropout multiplies (attention probabilities, attention output, feed-forward output), forward
    and backward, the two residual adds, the two gradient sums where each residual branch
    rejoins, and the bias gradients of the four linear maps (aten kernels; drawing the masks is
    left out)."""
    x, y, m = torch.randn(t, h), torch.randn(t, h), torch.randn(t, h)
    p, pm = torch.randn(b, heads, l, l), torch.randn(b, heads, l, l)
    g3, gi = torch.randn(t, 3 * h), torch.randn(t, i)
    hidden = [lambda: x * m] * 4 + [lambda: x + y] * 4
    bias = [lambda: g3.sum(0), lambda: x.sum(0), lambda: gi.sum(0), lambda: x.sum(0)]
    return hidden + [lambda: p * pm] * 2 + bias


def embedding_ops(t, e, vocab, max_pos):
    """The embeddings' gradients: the word, position and token-type rows added into their
    gradient buffers (sparse, as the Rust side does for the word table)."""
    g, ids = torch.randn(t, e), torch.randint(0, vocab, (t,))
    word, pos, typ = torch.zeros(vocab, e), torch.zeros(max_pos, e), torch.zeros(2, e)
    pos_ids, typ_ids = torch.arange(t) % max_pos, torch.zeros(t, dtype=torch.long)
    return [lambda: word.index_add_(0, ids, g), lambda: pos.index_add_(0, pos_ids, g), lambda: typ.index_add_(0, typ_ids, g)]


def model_ops(cfg, b, l):
    """(products, essential kernels, the other arithmetic training cannot skip) of one training
    step at batch b, as lists of callables."""
    t = b * l
    h, i, layers, heads = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
    e = cfg.get("embedding_size", h)
    layer = linear_ops(t, h, 3 * h) + linear_ops(t, h, h) + linear_ops(t, h, i) + linear_ops(t, i, h) + attention_ops(b, heads, l, h // heads)
    gemm = layers * layer + (linear_ops(t, e, h) if e != h else [])
    other = layers * other_ops(t, h, i, b, heads, l) + embedding_ops(t, e, cfg["vocab_size"], cfg.get("max_position_embeddings", 512))
    return gemm, layers * essential_ops(t, h, i, b, heads, l), other


def serial_s(ops):
    """(best, median) seconds of `ops` one after another, all threads: each op timed alone."""
    unique = {id(f): f for f in ops}
    stats = {k: samples(f, min_s=0.1) for k, f in unique.items()}
    return sum(min(stats[id(f)]) for f in ops), sum(statistics.median(stats[id(f)]) for f in ops)


def streams_s(halves):
    """(best, median) seconds of two single-threaded streams running their op lists concurrently.
    The workers are started once, each sets its own thread count, and they are released together
    for each repetition: starting threads for every repetition measured ~40% slower, and workers
    left at 2 threads each ~15% slower (ELECTRA-seed's products)."""
    start, done, stop = threading.Barrier(len(halves) + 1), threading.Barrier(len(halves) + 1), []

    def worker(ops):
        torch.set_num_threads(1)
        while True:
            start.wait()
            if stop:
                return
            for f in ops:
                f()
            done.wait()

    threads = torch.get_num_threads()
    workers = [threading.Thread(target=worker, args=(ops,)) for ops in halves]
    for w in workers:
        w.start()

    def both():
        start.wait()
        done.wait()

    try:
        ts = samples(both, min_s=1.0, min_reps=3)
    finally:
        stop.append(True)
        start.wait()
        for w in workers:
            w.join()
        torch.set_num_threads(threads)  # a worker's call also set the default for new threads
    return min(ts), statistics.median(ts)


def adam_s(params):
    """(best, median) of one fused Adam step over `params` fp32 values (torch's fastest CPU Adam)."""
    p = torch.zeros(params)
    p.grad = torch.randn(params)
    opt = torch.optim.Adam([p], lr=1e-5, fused=True)
    ts = samples(opt.step, min_reps=5)
    return min(ts), statistics.median(ts)


def count_params(c, classes=7):
    h, i, v, e = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c.get("embedding_size", c["hidden_size"])
    emb = (v + c.get("max_position_embeddings", 512) + c.get("type_vocab_size", 2)) * e + 2 * e
    proj = (e * h + h) if e != h else 0
    layer = 4 * (h * h + h) + 2 * h * i + i + h + 4 * h
    return emb + proj + c["num_hidden_layers"] * layer + h * classes + classes


def bound(name, cfg):
    mm = [matmul_gflops()]
    b, l = BATCH[name], 64
    h, i, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    e = cfg.get("embedding_size", h)
    # The model FLOPs of src/train/flops.rs: 3 x forward.
    flops = 3 * b * l * (layers * (8 * h * h + 4 * h * i + 4 * l * h) + (2 * e * h if e != h else 0))
    parts = ["gemm", "essential", "other"]
    serial = dict(zip(parts, map(serial_s, model_ops(cfg, b, l))))
    halves = [model_ops(cfg, b // 2, l) for _ in range(2)]
    streams = {part: streams_s([half[k] for half in halves]) for k, part in enumerate(parts)}
    adam = adam_s(count_params(cfg))
    mm.append(matmul_gflops())
    row = {"model": name, "batch": b, "max_len": l, "train_gflop_per_step": flops / 1e9}
    for k, stat in enumerate(["best", "bench"]):
        matmul = max(m[0] for m in mm) if stat == "best" else statistics.mean(m[1] for m in mm)
        g, s, other = (min(serial[part][k], streams[part][k]) for part in parts)
        total = g + s + adam[k]
        row[stat] = {
            "matmul_gflops": matmul, "step_ms_at_target": flops / (TARGET * matmul * 1e9) * 1e3,
            "gemm_ms": g * 1e3, "gemm_serial_ms": serial["gemm"][k] * 1e3, "gemm_streams_ms": streams["gemm"][k] * 1e3,
            "essential_ms": s * 1e3, "adam_ms": adam[k] * 1e3, "bound_ms": total * 1e3, "other_ms": other * 1e3,
            "gemm_only_fraction": flops / g / 1e9 / matmul, "max_fraction": flops / total / 1e9 / matmul,
            "max_fraction_with_other": flops / (total + other) / 1e9 / matmul,
        }
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=1, help="repeat the whole measurement this many times")
    ap.add_argument("--out")
    a = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    print(f"{'round':<6}{'model':<18}{'stat':<6}{'matmul':>7}{'ms @75%':>9}{'GEMM ms':>9}{'(serial':>8}{' streams)':>9}"
          f"{'LN/GELU/sm':>11}{'Adam':>6}{'GEMM-only':>10}{'bound':>7}{'other':>9}{'bound+':>7}")
    for r in range(a.rounds):
        for name, path in MODELS.items():
            if not path.exists():
                continue
            row = dict(bound(name, json.loads(path.read_text())), round=r)
            rows.append(row)
            for stat in ["best", "bench"]:
                x = row[stat]
                print(f"{r:<6}{name:<18}{stat:<6}{x['matmul_gflops']:>7.0f}{x['step_ms_at_target']:>9.0f}{x['gemm_ms']:>9.0f}"
                      f"{x['gemm_serial_ms']:>8.0f}{x['gemm_streams_ms']:>9.0f}{x['essential_ms']:>11.0f}{x['adam_ms']:>6.0f}"
                      f"{x['gemm_only_fraction']:>10.0%}{x['max_fraction']:>7.0%}{x['other_ms']:>9.0f}"
                      f"{x['max_fraction_with_other']:>7.0%}", flush=True)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), platform.processor())
    out = {"machine": f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}", "date": time.strftime("%Y-%m-%d"),
           "target": TARGET, "rows": rows}
    if a.out:
        path = pathlib.Path(a.out)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1) + "\n")
        tmp.replace(path)


if __name__ == "__main__":
    main()
