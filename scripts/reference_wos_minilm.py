"""Python reference for the WOS-sample fine-tuning proof (issue 4): MiniLM,
first 168 texts train / last 42 test, MAX_LEN 128, AdamW lr 5e-5, weight decay
0.01 (not on bias/LayerNorm), linear schedule with 10% warmup, clip 1.0,
batch 16, 5 epochs. `--head cls` is our/the notebook's head ([CLS] hidden ->
Linear); `--head pooler` is BertForSequenceClassification's (pooler -> Linear).

    .venv/bin/python scripts/reference_wos_minilm.py --head cls --seed 0
"""
import argparse
import math
import pathlib

import torch
from transformers import BertModel, BertTokenizerFast

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--head", choices=["cls", "pooler"], default="cls")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/wos-sample"))
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    d = pathlib.Path(a.data)
    texts = d.joinpath("X.txt").read_text().splitlines()
    labels = [int(x) for x in d.joinpath("YL1.txt").read_text().split()]
    tok = BertTokenizerFast.from_pretrained(ROOT / "models/minilm")
    bert = BertModel.from_pretrained(ROOT / "models/minilm", add_pooling_layer=a.head == "pooler")
    head = torch.nn.Linear(bert.config.hidden_size, 7)
    head.weight.data.normal_(0, 0.02)
    head.bias.data.zero_()
    drop = torch.nn.Dropout(bert.config.hidden_dropout_prob)
    params = list(bert.named_parameters()) + [("classifier." + n, p) for n, p in head.named_parameters()]
    nd = lambda n: n.endswith("bias") or "LayerNorm" in n
    opt = torch.optim.AdamW([{"params": [p for n, p in params if not nd(n)], "weight_decay": 0.01},
                             {"params": [p for n, p in params if nd(n)], "weight_decay": 0.0}], lr=5e-5)
    enc = lambda xs: tok(xs, truncation=True, max_length=128, padding=True, return_tensors="pt")
    tr_x, tr_y, te_x, te_y = texts[:168], labels[:168], texts[168:], labels[168:]
    steps = 5 * math.ceil(168 / 16)
    warm = math.ceil(0.1 * steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: s / warm if s < warm else max(0.0, (steps - s) / (steps - warm)))

    def forward(b, train):
        bert.train(train)
        out = bert(**b)
        h = out.pooler_output if a.head == "pooler" else out.last_hidden_state[:, 0]
        return head(drop(h) if train else h)

    accs = []
    for _ in range(5):
        perm = torch.randperm(168).tolist()
        for i in range(0, 168, 16):
            idx = perm[i:i + 16]
            logits = forward(enc([tr_x[j] for j in idx]), True)
            loss = torch.nn.functional.cross_entropy(logits, torch.tensor([tr_y[j] for j in idx]))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
            opt.step()
            sched.step()
        with torch.inference_mode():
            pred = forward(enc(te_x), False).argmax(-1)
        accs.append(round(100 * (pred == torch.tensor(te_y)).float().mean().item()))
    print(f"head {a.head} seed {a.seed}: test accuracy per epoch {' / '.join(map(str, accs))} %")


if __name__ == "__main__":
    main()
