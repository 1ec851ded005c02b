"""Python `transformers` side of the ElectraForMaskedLM parity tests (tests/pretrain.rs).

    .venv/bin/python scripts/mlm_parity.py logits MODEL_DIR OUT.safetensors
        Loads MODEL_DIR (e.g. written by the Rust pre-training) with
        ElectraForMaskedLM.from_pretrained, fails unless every key loaded and
        the decoder is tied to the word embeddings, and writes the MLM logits
        of a few sentences with their inputs.

    .venv/bin/python scripts/mlm_parity.py random OUT_DIR
        Creates a small random ElectraForMaskedLM (vocabulary of models/minilm),
        saves it as the seed notebook saved its generator, torch.save(state_dict)
        to OUT_DIR/babylm_model.bin plus OUT_DIR/config.json, and writes the
        logits to OUT_DIR/logits.safetensors.

    .venv/bin/python scripts/mlm_parity.py rtd MODEL_DIR OUT.safetensors
        Loads MODEL_DIR (written by the Rust replaced-token-detection
        pre-training) with ElectraForPreTraining.from_pretrained and
        MODEL_DIR/generator with ElectraForMaskedLM.from_pretrained, fails
        unless every key of both loaded, and writes the discriminator's logits
        (`logits`) and the generator's (`generator_logits`) with the inputs.

Padding positions are written too; compare only where attention_mask is 1.
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import save_file
from transformers import BertTokenizerFast, ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining

ROOT = pathlib.Path(__file__).resolve().parent.parent
MINILM = ROOT / "models" / "minilm"

SENTENCES = [
    "The smoothness of reaching movements was evaluated in healthy people.",
    "Convolutional neural [MASK] were trained on 3,000 images.",
    "short",
    "Électricité, naïve café: accents & punctuation -- 42 times.",
]


@torch.no_grad()
def logits_of(model, out, generator=None):
    tok = BertTokenizerFast.from_pretrained(MINILM)
    enc = tok(SENTENCES, truncation=True, max_length=24, padding=True, return_tensors="pt")
    ids, mask, types = enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]
    logits = model.eval()(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    tensors = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "logits": logits.contiguous()}
    if generator is not None:
        tensors["generator_logits"] = generator.eval()(input_ids=ids, attention_mask=mask, token_type_ids=types).logits.contiguous()
    save_file(tensors, out)


def load_clean(cls, model_dir):
    model, info = cls.from_pretrained(model_dir, output_loading_info=True, attn_implementation="eager")
    bad = {k: sorted(v) for k, v in info.items() if v}
    if bad:
        sys.exit(f"{model_dir}: did not load cleanly as {cls.__name__}: {bad}")
    return model


def rtd(model_dir, out):
    disc = load_clean(ElectraForPreTraining, model_dir)
    gen = load_clean(ElectraForMaskedLM, pathlib.Path(model_dir) / "generator")
    tied = gen.generator_lm_head.weight.data_ptr() == gen.electra.embeddings.word_embeddings.weight.data_ptr()
    same = torch.equal(gen.electra.embeddings.word_embeddings.weight, disc.electra.embeddings.word_embeddings.weight)
    print(json.dumps({"loading_info": {}, "tied": tied, "shared_embeddings": same}))
    logits_of(disc, out, gen)


def load(model_dir, out):
    model, info = ElectraForMaskedLM.from_pretrained(model_dir, output_loading_info=True, attn_implementation="eager")
    bad = {k: sorted(v) for k, v in info.items() if v}
    tied = model.generator_lm_head.weight.data_ptr() == model.electra.embeddings.word_embeddings.weight.data_ptr()
    print(json.dumps({"loading_info": bad, "tied": tied}))
    if bad or not tied:
        sys.exit(f"{model_dir}: did not load cleanly: {bad}, tied={tied}")
    logits_of(model, out)


def random(out_dir):
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    cfg = ElectraConfig(vocab_size=30522, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48, max_position_embeddings=64, pad_token_id=0,
                        # The encoder's activation differs from the head's, which
                        # transformers fixes to exact GELU: parity checks both.
                        hidden_act="gelu_new", attn_implementation="eager")
    model = ElectraForMaskedLM(cfg)
    # Perturb the zero/one initialisations so that biases and LayerNorms are checked too.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    cfg.to_json_file(out / "config.json")
    torch.save(model.state_dict(), out / "babylm_model.bin")
    logits_of(model, out / "logits.safetensors")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "logits":
        load(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "rtd":
        rtd(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "random":
        random(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
