# Two entry points (see README): `make run` and `make test`.
# Everything lives in .venv; re-running is cheap once it exists.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup data run test lint clean bench-text

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

setup: $(STAMP)

# Debian ships Fashion-MNIST as a package; elsewhere torchvision downloads it.
data:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -qq dataset-fashion-mnist || (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) >/dev/null; \
	fi

run: setup data
	$(BIN)/supcon train --config fashion-mnist --method supcon --data fashion-mnist --out runs/fashion-mnist-supcon

test: setup
	$(BIN)/python -m pytest -q -n 2 tests

# Inputs of benchmarks/text_fewshot.py (setfit, MiniLM weights, BBC News, tweets); not library deps.
bench-text: setup
	$(BIN)/python benchmarks/text_fewshot.py --setup

lint: setup
	$(BIN)/ruff check supcon tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
