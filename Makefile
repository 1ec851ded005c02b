# encoder-bench: the two commands a newcomer needs are `make notebook` and `make test`.
# Everything they need is installed into the repository (.venv, .libtorch, models/, .tools/).
SHELL := /bin/bash
PY := .venv/bin/python
LARGE_FIXTURES := tests/fixtures/large/train_step.safetensors tests/fixtures/large/electra_parity.safetensors \
	tests/fixtures/large/minilm_parity.safetensors tests/fixtures/large/electra-seed/babylm_model.bin

.PHONY: setup fixtures electra-seed test test-notebook lint notebook notebook-source notebook-check notebook-setup demo bench

setup:
	@bash scripts/setup.sh

fixtures: setup
	@if ls $(LARGE_FIXTURES) >/dev/null 2>&1; then echo "[fixtures] present"; \
	else $(PY) scripts/make_parity_fixtures.py; fi

test: fixtures
	cargo build --all-targets
	cargo test --no-fail-fast
	$(MAKE) test-notebook

# The notebook executed with fast settings through the evcxr kernel (scripts/test_notebook.py),
# after checking that the .ipynb is what its one source, scripts/make_notebook.py, generates.
test-notebook: notebook-check
	$(NB_ENV) $(PY) scripts/test_notebook.py

# The notebook's one source is scripts/make_notebook.py: this regenerates the .ipynb from it ...
notebook-source: notebook-setup
	$(PY) scripts/make_notebook.py

# ... and this fails when the committed .ipynb has drifted from it (a hand edit, or a generator
# change not regenerated).
notebook-check: notebook-setup
	$(PY) scripts/make_notebook.py --check

# An ELECTRA of the seed's shape pre-trained on every sample text, for the CLI's examples
# (`make electra-seed`). The notebook does not use it: it pre-trains per fold, inside the kernel,
# so no pre-training reads a text it later tests on and no separate build is needed.
electra-seed: setup
	cargo run --release -- pretrain --minutes 4 --out models/electra-seed

# Rust vs Python transformers, side by side (~15 minutes; writes bench/results/latest.json).
bench: fixtures
	scripts/bench-vs-python

lint: setup
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# The Rust Jupyter kernel: evcxr_jupyter into .tools, jupyter packages and the
# kernelspec (with libtorch's library path) into .venv.
notebook-setup: setup
	@bash scripts/setup-notebook.sh

# Executes notebooks/technical_evaluation.ipynb headless into notebooks/out/
# (.ipynb and .html). The first run compiles the crate inside the kernel's
# build dir (target/evcxr, minutes); later runs reuse it. Settings: see the
# notebook's first cell (EPOCHS, MAX_LEN, BATCH_SIZE, WOS_DIR, BERT_MODEL, ...).
NB_ENV := JUPYTER_PATH=$(CURDIR)/.venv/share/jupyter
notebook: notebook-check
	cd notebooks && $(NB_ENV) ../.venv/bin/jupyter nbconvert --to notebook --execute technical_evaluation.ipynb \
		--ExecutePreprocessor.timeout=7200 \
		--NotebookExporter.preprocessors=nbconvert.preprocessors.CoalesceStreamsPreprocessor \
		--output-dir out --output technical_evaluation.ipynb
	cd notebooks && $(NB_ENV) ../.venv/bin/jupyter nbconvert --to html out/technical_evaluation.ipynb --output-dir out
	@echo "notebook written to notebooks/out/technical_evaluation.ipynb and .html"

demo: setup
	cargo run -- demo
