"""Checkpoints as researchers have them, made by Python `transformers`, for tests/loading.rs.

    .venv/bin/python scripts/make_loading_fixtures.py OUT_DIR

One tiny random BertForSequenceClassification (hidden 32, 2 layers, 2 heads,
vocabulary of models/minilm, 3 labels) written seven ways under OUT_DIR:

    sharded-safetensors/  save_pretrained(max_shard_size="50KB"): model.safetensors.index.json + 3+ shards
    sharded-bin/          the same with safe_serialization=False (pytorch_model.bin.index.json), written
                          by hand as transformers 4.x did when the installed version no longer writes .bin
    tinybert/             config.json without model_type/architectures, with general TinyBERT's extra fields
                          (emb_size, cell, structure, pre_trained, training); pytorch_model.bin with its
                          extra keys (fit_denses.*, cls.predictions.*)
    tinybert-general/     the same without the classifier head, as general TinyBERT ships
    google/               bert_config.json only (Google's original field set), pytorch_model.bin with
                          TF-era LayerNorm.gamma/.beta names
    hub/models--test-org--tiny-bert/snapshots/<rev>/ + refs/main
                          a hub cache (HF_HUB_CACHE=OUT_DIR/hub, HF_HUB_OFFLINE=1) holding the sharded
                          safetensors checkpoint
    reference.json        input_ids, attention_mask, the [CLS] logits classifier(last_hidden_state[:, 0]) (the
                          seed's head: configs without architectures) and transformers' own logits
                          (pooler head: configs naming BertForSequenceClassification)
                          (our classifier's head: no pooler) and the [CLS] hidden states

Every directory holds the same weights, so every one must give reference.json's logits.
"""
import json
import pathlib
import sys

import torch
from transformers import BertConfig, BertForSequenceClassification

REV = "0123456789abcdef0123456789abcdef01234567"
HUB_ID = "test-org/tiny-bert"


def build():
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=30522,  # models/minilm's vocabulary, so its tokenizer drives the CLI test
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
    )
    model = BertForSequenceClassification(cfg).eval()
    with torch.no_grad():
        # Move every parameter off its initial value (LayerNorm 1/0, zero biases).
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return cfg, model


def state_dict(model):
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def save_bin_shards(sd, out, max_bytes=50_000):
    """pytorch_model-0000i-of-0000N.bin shards and their index, as transformers 4.x writes them."""
    shards, cur, size = [], {}, 0
    for k in sorted(sd):
        n = sd[k].numel() * sd[k].element_size()
        if cur and size + n > max_bytes:
            shards.append(cur)
            cur, size = {}, 0
        cur[k] = sd[k]
        size += n
    shards.append(cur)
    total = len(shards)
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        name = f"pytorch_model-{i:05d}-of-{total:05d}.bin"
        torch.save(shard, out / name)
        weight_map.update({k: name for k in shard})
    meta = {"total_size": sum(v.numel() * v.element_size() for v in sd.values())}
    (out / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": meta, "weight_map": weight_map}, indent=2))


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg, model = build()
    sd = state_dict(model)

    # 1. Sharded safetensors.
    d = out / "sharded-safetensors"
    model.save_pretrained(d, max_shard_size="50KB", safe_serialization=True)

    # 2. Sharded .bin.
    d = out / "sharded-bin"
    d.mkdir(exist_ok=True)
    try:
        model.save_pretrained(d, max_shard_size="50KB", safe_serialization=False)
    except Exception as e:  # transformers 5 may only write safetensors
        print(f"save_pretrained(safe_serialization=False) failed ({e}); writing .bin shards by hand", file=sys.stderr)
    if not (d / "pytorch_model.bin.index.json").exists():
        for f in d.glob("model*.safetensors*"):
            f.unlink()
        cfg.save_pretrained(d)
        save_bin_shards(sd, d)

    # 3. TinyBERT-style: no model_type/architectures, extra fields and keys.
    d = out / "tinybert"
    d.mkdir(exist_ok=True)
    c = {k: v for k, v in cfg.to_dict().items() if k not in ("model_type", "architectures", "id2label", "label2id")}
    c.update({"emb_size": 32, "cell": {}, "structure": [], "pre_trained": "", "training": ""})
    (d / "config.json").write_text(json.dumps(c, indent=2))
    g = torch.Generator().manual_seed(1)
    extra = {
        "fit_denses.0.weight": torch.randn(128, 32, generator=g),
        "fit_denses.0.bias": torch.randn(128, generator=g),
        "cls.predictions.bias": torch.randn(30522, generator=g),
        "cls.predictions.transform.dense.weight": torch.randn(32, 32, generator=g),
    }
    torch.save({**sd, **extra}, d / "pytorch_model.bin")
    # ... and as general TinyBERT ships: no classifier head at all (for the CLI test).
    d2 = out / "tinybert-general"
    d2.mkdir(exist_ok=True)
    (d2 / "config.json").write_text((d / "config.json").read_text())
    torch.save({**{k: v for k, v in sd.items() if not k.startswith("classifier.")}, **extra}, d2 / "pytorch_model.bin")

    # 4. Google's original conversion: bert_config.json, gamma/beta names.
    d = out / "google"
    d.mkdir(exist_ok=True)
    keep = ["attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size", "initializer_range",
            "intermediate_size", "max_position_embeddings", "num_attention_heads", "num_hidden_layers",
            "type_vocab_size", "vocab_size"]
    (d / "bert_config.json").write_text(json.dumps({k: cfg.to_dict()[k] for k in keep}, indent=2))
    google = {}
    for k, v in sd.items():
        k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        google[k] = v
    torch.save(google, d / "pytorch_model.bin")

    # 5. A hub cache holding the sharded safetensors checkpoint.
    repo = out / "hub" / ("models--" + HUB_ID.replace("/", "--"))
    snap = repo / "snapshots" / REV
    model.save_pretrained(snap, max_shard_size="50KB", safe_serialization=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(REV)

    # Reference outputs for fixed input ids (one padded row).
    ids = torch.tensor([[101, 7, 42, 999, 3, 102], [101, 500, 6, 102, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        hidden = model.bert(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
        logits = model.classifier(hidden[:, 0])
        # transformers' own output: pooler -> dropout -> classifier, what a
        # checkpoint naming BertForSequenceClassification is loaded as.
        seq_logits = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).logits
    ref = {
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "cls_logits": logits.tolist(),
        "seq_logits": seq_logits.tolist(),
        "cls_hidden": hidden[:, 0].tolist(),
        "hub_id": HUB_ID,
        "num_labels": 3,
    }
    (out / "reference.json").write_text(json.dumps(ref))
    for d in sorted(p for p in out.iterdir() if p.is_dir()):
        print(d.name, sorted(f.name for f in d.iterdir()))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
