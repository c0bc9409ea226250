# Every target sets itself up: `make demo` and `make test` work on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR := runs/demo

.PHONY: setup demo test test-fast lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Built-in corpus -> train (small model, CPU) -> WER on unseen test speakers -> transcribe a file.
demo: setup
	$(BIN)/asr-train hydra.run.dir=$(DEMO_DIR) trainer.max_time_minutes=14.5 $(DEMO_ARGS)
	$(BIN)/asr-eval model=$(DEMO_DIR)/checkpoints/best.pt \
		manifest=data/synthetic/manifests/test.jsonl output=$(DEMO_DIR)/test.json
	$(BIN)/asr-transcribe model=$(DEMO_DIR)/checkpoints/best.pt data/synthetic/test/3000/30000/3000-30000-0000.flac

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	for script in scripts/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) runs outputs .pytest_cache .hypothesis
