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
# evcxr rewrites its kernelspec on start unless version.txt matches, so let it
# install itself first, then add what libtorch needs to the kernel's env.
JUPYTER_PATH="$root/.venv/share/jupyter" .tools/bin/evcxr_jupyter --install > /dev/null
libdir=$(readlink -f .libtorch)/lib
.venv/bin/python - "$kdir/kernel.json" "$libdir" "$(readlink -f .libtorch)" "$root/.tools/bin" <<'PYEOF'
import json, os, sys
path, libdir, libtorch, tools = sys.argv[1:]
spec = json.load(open(path))
spec["display_name"] = "Rust (encoder-bench)"
spec["env"] = {"LD_LIBRARY_PATH": libdir, "DYLD_LIBRARY_PATH": libdir, "LIBTORCH": libtorch,
               "LIBTORCH_CXX11_ABI": "1", "PATH": tools + os.pathsep + os.environ.get("PATH", "")}
tmp = path + ".tmp"
json.dump(spec, open(tmp, "w"), indent=1)
os.replace(tmp, path)
PYEOF
say "kernelspec in $kdir (env carries LD_LIBRARY_PATH=$libdir)"
