#!/usr/bin/env bash
# Idempotent notebook set-up, on top of scripts/setup.sh:
#   .tools/bin/evcxr_jupyter   the Rust Jupyter kernel (cargo install --locked, ~7 min once)
#   .venv                      + jupyter_client nbclient nbconvert nbformat
#   .venv/share/jupyter/kernels/rust/kernel.json   with what libtorch needs in its env
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '[notebook-setup] %s\n' "$*"; }
EVCXR_VERSION=0.22.0
root=$(pwd)

if [ -x .tools/bin/evcxr_jupyter ] && grep -q "evcxr_jupyter $EVCXR_VERSION" .tools/.crates.toml 2>/dev/null; then
  say "evcxr_jupyter $EVCXR_VERSION present"
else
  say "installing evcxr_jupyter $EVCXR_VERSION into .tools (about 7 minutes)"
  cargo install --locked evcxr_jupyter --version "$EVCXR_VERSION" --root .tools
fi

if .venv/bin/python -c "import jupyter_client, nbclient, nbconvert, nbformat" 2>/dev/null; then
  say "jupyter packages present"
else
  say "installing jupyter_client nbclient nbconvert nbformat"
  .venv/bin/pip install --quiet --disable-pip-version-check jupyter_client nbclient nbconvert nbformat
fi

kdir=.venv/share/jupyter/kernels/rust
mkdir -p "$kdir"
libdir=$(readlink -f .libtorch)/lib
# Written every time: the paths are absolute and the checkout may have moved.
cat > "$kdir/kernel.json.tmp" <<JSON
{
  "argv": ["$root/.tools/bin/evcxr_jupyter", "--control_file", "{connection_file}"],
  "display_name": "Rust (encoder-bench)",
  "language": "rust",
  "interrupt_mode": "message",
  "env": {
    "LD_LIBRARY_PATH": "$libdir",
    "DYLD_LIBRARY_PATH": "$libdir",
    "LIBTORCH": "$(readlink -f .libtorch)",
    "LIBTORCH_CXX11_ABI": "1",
    "PATH": "$root/.tools/bin:$PATH"
  }
}
JSON
mv "$kdir/kernel.json.tmp" "$kdir/kernel.json"
say "kernelspec written to $kdir"
