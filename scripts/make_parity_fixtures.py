"""Generates the parity fixtures the Rust tests compare against, using Python
`transformers` as the reference implementation.

Run through the Makefile (`make fixtures`) or directly:
    .venv/bin/python scripts/make_parity_fixtures.py

Writes
  tests/fixtures/tokenizer_ids.json            (small, committed)
  tests/fixtures/large/minilm_parity.safetensors
  tests/fixtures/large/electra-seed/{config.json,babylm_model.bin}
  tests/fixtures/large/electra_parity.safetensors
  tests/fixtures/large/train_step.safetensors
Large files are regenerated when missing and are not committed.
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import save_file
from transformers import BertModel, BertTokenizerFast, ElectraConfig, ElectraForMaskedLM

ROOT = pathlib.Path(__file__).resolve().parent.parent
MINILM = ROOT / "models" / "minilm"
FIX = ROOT / "tests" / "fixtures"
LARGE = FIX / "large"

SENTENCES = [
    "Hello world!",
    "The smoothness of reaching movements was evaluated in healthy people.",
    "Électricité, naïve café: UNICODE accents & punctuation -- (tested) 42 times.",
    "A longer abstract: Convolutional neural networks were trained on 3,000 images "
    "to classify cerebrovascular accidents, and the results were compared with those "
    "of radiologists who reviewed the same scans independently.",
    "short",
]
MAX_LEN = 32

# The seed's ELECTRA-small shape (ElectraForMaskedLM, saved with torch.save(state_dict)).
SEED_ELECTRA = dict(
    vocab_size=30522,
    embedding_size=64,
    hidden_size=196,
    num_hidden_layers=18,
    num_attention_heads=4,
    intermediate_size=784,
    max_position_embeddings=512,
)


def tokenizer_ids():
    tok = BertTokenizerFast.from_pretrained(MINILM)
    cases = []
    for s in SENTENCES:
        for max_len in (8, 64):
            enc = tok(s, truncation=True, max_length=max_len)
            cases.append({"text": s, "max_len": max_len, "ids": enc["input_ids"]})
    (FIX / "tokenizer_ids.json").write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")


def batch(tok):
    enc = tok(SENTENCES, truncation=True, max_length=MAX_LEN, padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]


@torch.no_grad()
def minilm_parity():
    tok = BertTokenizerFast.from_pretrained(MINILM)
    model = BertModel.from_pretrained(MINILM, attn_implementation="eager").eval()
    ids, mask, types = batch(tok)
    hidden = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    save_file({"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "last_hidden_state": hidden.contiguous()},
              LARGE / "minilm_parity.safetensors")


@torch.no_grad()
def electra_parity():
    torch.manual_seed(0)
    cfg = ElectraConfig(**SEED_ELECTRA)
    model = ElectraForMaskedLM(cfg).eval()
    out = LARGE / "electra-seed"
    out.mkdir(parents=True, exist_ok=True)
    cfg.to_json_file(out / "config.json")
    torch.save(model.state_dict(), out / "babylm_model.bin")
    tok = BertTokenizerFast.from_pretrained(MINILM)
    ids, mask, types = batch(tok)
    hidden = model.electra(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    save_file({"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "last_hidden_state": hidden.contiguous()},
              LARGE / "electra_parity.safetensors")


def train_step():
    """One step of the notebook's classifier: MiniLM -> [CLS] -> Linear(384, 7),
    cross-entropy with label smoothing 0.001 on logits, dropout off."""
    torch.manual_seed(1)
    tok = BertTokenizerFast.from_pretrained(MINILM)
    bert = BertModel.from_pretrained(MINILM, attn_implementation="eager").eval()
    head = torch.nn.Linear(bert.config.hidden_size, 7)
    ids, mask, types = batch(tok)
    targets = torch.tensor([0, 3, 6, 2, 5])
    logits = head(bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state[:, 0])
    loss = torch.nn.functional.cross_entropy(logits, targets, label_smoothing=0.001)
    loss.backward()
    q = bert.encoder.layer[0].attention.self.query
    save_file({
        "input_ids": ids, "attention_mask": mask, "token_type_ids": types, "targets": targets,
        "classifier.weight": head.weight.detach().contiguous(), "classifier.bias": head.bias.detach().contiguous(),
        "loss": loss.detach().reshape(1), "logits": logits.detach().contiguous(),
        "grad.classifier.weight": head.weight.grad.contiguous(), "grad.classifier.bias": head.bias.grad.contiguous(),
        "grad.bert.encoder.layer.0.attention.self.query.weight": q.weight.grad.contiguous(),
    }, LARGE / "train_step.safetensors")


def main():
    if not (MINILM / "config.json").exists():
        sys.exit("models/minilm is missing: run `make setup` first")
    LARGE.mkdir(parents=True, exist_ok=True)
    tokenizer_ids()
    minilm_parity()
    electra_parity()
    train_step()
    print("[fixtures] written to", FIX.relative_to(ROOT))


if __name__ == "__main__":
    main()
