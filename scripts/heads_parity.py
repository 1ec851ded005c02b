"""Python `transformers` side of the classifier-head parity tests (tests/heads.rs).

    .venv/bin/python scripts/heads_parity.py logits MODEL_DIR OUT.safetensors [--trust-remote-code]
        Loads MODEL_DIR (a checkpoint written by encoder-bench's save_classifier
        or `encoder-bench export`) with AutoModelForSequenceClassification,
        fails unless every key loaded, prints the class built, id2label and the
        loading info as JSON, and writes the logits of a few sentences with
        their inputs (tokenized by MODEL_DIR's tokenizer when it has one,
        else models/minilm's).

    .venv/bin/python scripts/heads_parity.py refuse MODEL_DIR
        Loads MODEL_DIR without trust_remote_code and prints JSON saying
        whether transformers refused it, and if not, which class it built and
        which weights it newly initialised.

Padding positions are written too; logits are per text, so compare all rows.
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import save_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent
MINILM = ROOT / "models" / "minilm"

SENTENCES = [
    "The smoothness of reaching movements was evaluated in healthy people.",
    "Convolutional neural networks were trained on 3,000 images.",
    "short",
    "Électricité, naïve café: accents & punctuation -- 42 times.",
]


@torch.no_grad()
def logits(model_dir, out, trust):
    model, info = AutoModelForSequenceClassification.from_pretrained(
        model_dir, output_loading_info=True, trust_remote_code=trust, attn_implementation="eager"
    )
    bad = {k: sorted(v) for k, v in info.items() if v}
    tok_dir = model_dir if (pathlib.Path(model_dir) / "tokenizer.json").exists() else MINILM
    tok = AutoTokenizer.from_pretrained(tok_dir, trust_remote_code=trust)
    enc = tok(SENTENCES, truncation=True, max_length=24, padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    types = enc.get("token_type_ids", torch.zeros_like(ids))
    out_logits = model.eval()(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    save_file({"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "logits": out_logits.contiguous()}, out)
    print(json.dumps({"class": type(model).__name__, "loading_info": bad, "id2label": model.config.id2label,
                      "tokenizer": str(tok_dir)}))
    if bad:
        sys.exit(f"not every key loaded: {bad}")


def refuse(model_dir):
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(model_dir, output_loading_info=True)
    except Exception as e:  # noqa: BLE001 - any refusal counts; the message is reported
        # transformers may have prompted "run the custom code? [y/N]" (stdin is closed: no) without a newline.
        print()
        print(json.dumps({"refused": True, "error": f"{type(e).__name__}: {e}"[:400]}))
        return
    print()
    print(json.dumps({"refused": False, "class": type(model).__name__, "missing": sorted(info["missing_keys"])}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["logits"] and len(sys.argv) in (4, 5):
        logits(sys.argv[2], sys.argv[3], sys.argv[4:] == ["--trust-remote-code"])
    elif sys.argv[1:2] == ["refuse"] and len(sys.argv) == 3:
        refuse(sys.argv[2])
    else:
        sys.exit(__doc__)
