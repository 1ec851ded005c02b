# encoder-bench: the two commands a newcomer needs are `make notebook` and `make test`.
# Everything they need is installed into the repository (.venv, .libtorch, models/, .tools/).
SHELL := /bin/bash
PY := .venv/bin/python
LARGE_FIXTURES := tests/fixtures/large/train_step.safetensors tests/fixtures/large/electra_parity.safetensors \
	tests/fixtures/large/minilm_parity.safetensors tests/fixtures/large/electra-seed/babylm_model.bin

.PHONY: setup fixtures test lint notebook notebook-setup demo

setup:
	@bash scripts/setup.sh

fixtures: setup
	@if ls $(LARGE_FIXTURES) >/dev/null 2>&1; then echo "[fixtures] present"; \
	else $(PY) scripts/make_parity_fixtures.py; fi

test: fixtures
	cargo build --all-targets
	cargo test --no-fail-fast

lint: setup
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# The Rust Jupyter kernel (evcxr_jupyter into .tools, jupyter packages and the
# kernelspec into .venv). The notebook itself is not written yet.
notebook-setup: setup
	@bash scripts/setup-notebook.sh

# Until the notebook lands this runs the CLI demo on the shipped WOS sample.
notebook: demo

demo: setup
	cargo run -- demo
