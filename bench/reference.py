"""The Python side of the benchmark: the seed notebook's pipeline in
`transformers`, and tuned variants, timed the way `encoder-bench bench` times
the Rust side (a timed phase covers tokenising the texts it consumes,
batching, the steps and a final device synchronisation; warm-up steps first,
untimed). Prints one JSON object per variant.

Variants:
  seed   the notebook: a Dataset whose __getitem__ runs `encode_plus` per
         item, padding to MAX_LEN; DataLoader; Adam lr 1e-5; cross-entropy with
         label smoothing 0.001 on raw logits; eval under no_grad, outputs
         moved to the CPU batch by batch.
  tuned  texts tokenised once per phase in one batched call, dynamic padding
         per batch (with --padding bucketed: texts sorted by length first, as
         the Rust side's bucketed padding), eval under inference_mode, one
         transfer at the end.
  bf16   tuned, with forward and loss under torch.autocast(<device>, bfloat16).

    .venv/bin/python bench/reference.py --model models/minilm --variants seed,tuned
"""
import argparse
import json
import pathlib
import resource
import time

import torch
import transformers
from transformers import AutoConfig, AutoModel, AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent


class Classifier(torch.nn.Module):
    """The seed's BERTClass / ELECTRAClass: [CLS] hidden -> dropout -> Linear."""

    def __init__(self, encoder, classes):
        super().__init__()
        self.encoder = encoder
        self.dropout = torch.nn.Dropout(encoder.config.hidden_dropout_prob)
        self.classifier = torch.nn.Linear(encoder.config.hidden_size, classes)

    def forward(self, ids, mask, token_type_ids):
        h = self.encoder(input_ids=ids, attention_mask=mask, token_type_ids=token_type_ids).last_hidden_state
        return self.classifier(self.dropout(h[:, 0]))


class SeedDataset(torch.utils.data.Dataset):
    """The seed's MultiLabelDataset: tokenises one text per __getitem__."""

    def __init__(self, texts, labels, tokenizer, max_len):
        self.texts, self.labels, self.tok, self.max_len = texts, labels, tokenizer, max_len

    def __len__(self):
        return len(self.texts)

    def __getitem__(self, i):
        text = " ".join(str(self.texts[i]).split())
        # `encode_plus` is gone from transformers 5; calling the tokenizer on one text is its successor.
        enc = self.tok(text, None, add_special_tokens=True, max_length=self.max_len, padding="max_length",
                                   truncation=True, return_token_type_ids=True)
        return {
            "ids": torch.tensor(enc["input_ids"], dtype=torch.long),
            "mask": torch.tensor(enc["attention_mask"], dtype=torch.long),
            "token_type_ids": torch.tensor(enc["token_type_ids"], dtype=torch.long),
            "targets": torch.tensor(self.labels[i], dtype=torch.long),
        }


def config_from_json(path):
    d = json.loads(pathlib.Path(path).read_text())
    return transformers.CONFIG_MAPPING[d["model_type"]](**{k: v for k, v in d.items() if k != "model_type"})


def load_encoder(a):
    """A pretrained directory, an ELECTRA config + state dict, or random weights of a config."""
    if a.random_config:
        torch.manual_seed(0)
        return AutoModel.from_config(config_from_json(a.random_config))
    if a.state_dict:
        model = AutoModel.from_config(config_from_json(a.config))
        sd = torch.load(a.state_dict, map_location="cpu", weights_only=True)
        prefix = model.base_model_prefix + "."
        sd = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in sd.items()}
        missing, _ = model.load_state_dict(sd, strict=False)
        missing = [k for k in missing if "position_ids" not in k]
        if missing:
            raise SystemExit(f"{a.state_dict}: missing keys {missing[:5]}")
        return model
    # Weights stored in any dtype are trained in fp32, as the Rust side does.
    return AutoModel.from_pretrained(a.model, dtype=torch.float32)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device, n):
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    sync(device)
    reps, t0 = 0, time.perf_counter()
    while reps < 3 or time.perf_counter() - t0 < 1.0:
        a @ b
        reps += 1
        sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def cycled(texts, labels, start, n):
    idx = [(start + i) % len(texts) for i in range(n)]
    return [texts[i] for i in idx], [labels[i] for i in idx]


def seed_batches(texts, labels, tok, a):
    loader = torch.utils.data.DataLoader(SeedDataset(texts, labels, tok, a.max_len), batch_size=a.batch_size, shuffle=False,
                                         num_workers=0)
    for b in loader:
        yield b["ids"], b["mask"], b["token_type_ids"], b["targets"]


def tuned_batches(texts, labels, tok, a):
    enc = tok(texts, truncation=True, max_length=a.max_len, return_token_type_ids=True)
    if a.padding == "bucketed":
        # As the Rust side's Padding::Bucketed without a shuffle: the phase's
        # texts sorted by length, longest first (stable), then batched.
        order = sorted(range(len(texts)), key=lambda i: -len(enc["input_ids"][i]))
        enc = {k: [enc[k][i] for i in order] for k in ("input_ids", "attention_mask", "token_type_ids")}
        labels = [labels[i] for i in order]
    for i in range(0, len(texts), a.batch_size):
        part = {k: enc[k][i:i + a.batch_size] for k in ("input_ids", "attention_mask", "token_type_ids")}
        p = tok.pad(part, padding="longest", return_tensors="pt")
        yield p["input_ids"], p["attention_mask"], p["token_type_ids"], torch.tensor(labels[i:i + a.batch_size])


def run_variant(variant, model, tok, texts, labels, a, device):
    batches = seed_batches if variant == "seed" else tuned_batches
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant == "bf16")
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.001)

    def train(n_start, steps):
        tx, ty = cycled(texts, labels, n_start, steps * a.batch_size)
        total = torch.zeros((), device=device)
        for ids, mask, types, y in batches(tx, ty, tok, a):
            ids, mask, types, y = ids.to(device), mask.to(device), types.to(device), y.to(device)
            with autocast:
                loss = loss_fn(model(ids, mask, types).float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach()
        return total.item()

    def evaluate(batches_n):
        tx, ty = cycled(texts, labels, 0, batches_n * a.batch_size)
        if variant == "seed":
            outs = []
            with torch.no_grad():
                for ids, mask, types, _ in batches(tx, ty, tok, a):
                    logits = model(ids.to(device), mask.to(device), types.to(device))
                    outs.extend(torch.softmax(logits, -1).cpu().numpy().tolist())
            return outs
        outs = []
        with torch.inference_mode(), autocast:
            for ids, mask, types, _ in batches(tx, ty, tok, a):
                outs.append(model(ids.to(device), mask.to(device), types.to(device)).float())
            return torch.cat(outs).softmax(-1).argmax(-1).cpu()

    model.train()
    train(0, a.warmup)
    sync(device)
    t0 = time.perf_counter()
    loss = train(a.warmup * a.batch_size, a.train_steps)
    train_s = time.perf_counter() - t0
    model.eval()
    evaluate(max(1, a.warmup))
    sync(device)
    t0 = time.perf_counter()
    evaluate(a.eval_batches)
    sync(device)
    eval_s = time.perf_counter() - t0
    return {
        "variant": variant,
        "model": a.name or a.random_config or a.state_dict or a.model,
        "device": str(device),
        "batch_size": a.batch_size,
        "max_len": a.max_len,
        "padding": "max_len" if variant == "seed" else a.padding,
        "train_samples_per_s": a.train_steps * a.batch_size / train_s,
        "eval_samples_per_s": a.eval_batches * a.batch_size / eval_s,
        "final_loss_sum": loss,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models/minilm"))
    ap.add_argument("--config", help="config.json for --state-dict (ELECTRA)")
    ap.add_argument("--state-dict", help="torch.save(state_dict) file, e.g. babylm_model.bin")
    ap.add_argument("--random-config", help="random weights of this config.json")
    ap.add_argument("--tokenizer", default=None, help="tokenizer directory (default: the model's, else models/minilm)")
    ap.add_argument("--name", default=None)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/wos-sample"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--train-steps", type=int, default=10)
    ap.add_argument("--eval-batches", type=int, default=10)
    ap.add_argument("--variants", default="seed,tuned")
    ap.add_argument("--padding", choices=("dynamic", "bucketed"), default="dynamic",
                    help="batching of the tuned and bf16 variants (the seed variant always pads to --max-len)")
    ap.add_argument("--matmul", type=int, default=0, help="also time an NxNxN fp32 matmul")
    a = ap.parse_args()
    device = torch.device(a.device)
    d = pathlib.Path(a.data)
    texts = d.joinpath("X.txt").read_text(encoding="utf-8").splitlines()
    labels = [int(x) for x in d.joinpath("YL1.txt").read_text().split()]
    tok_dir = a.tokenizer or (a.model if not (a.random_config or a.state_dict) else str(ROOT / "models/minilm"))
    tok = AutoTokenizer.from_pretrained(tok_dir)
    gflops = matmul_gflops(device, a.matmul) if a.matmul else None
    for variant in a.variants.split(","):
        torch.manual_seed(0)
        model = Classifier(load_encoder(a), 7).to(device)
        r = run_variant(variant, model, tok, texts, labels, a, device)
        r["matmul_gflops"] = gflops
        print(json.dumps(r), flush=True)
        del model


if __name__ == "__main__":
    main()
