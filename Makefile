# IVADAS developer entry points. `make test` is what CI runs (see .ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test up demo bench synth clean

$(BIN)/ivadas: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -c constraints.txt -e '.[dev]'
	touch $@

node_modules/.bin/cdk: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

install: $(BIN)/ivadas node_modules/.bin/cdk

test: install
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 $(BIN)/pytest -q

synth: install
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 npx cdk synth

# The main job: train the demo if nothing is approved yet, then serve API and UI on http://127.0.0.1:8000
up: $(BIN)/ivadas
	$(BIN)/ivadas up

# The demo on synthetic data: random backbone weights unless ImageNet weights are in the torch hub cache.
demo: $(BIN)/ivadas
	$(BIN)/ivadas demo-data
	$(BIN)/ivadas train --data .ivadas/demo-data --backbone resnet18 --weights $${WEIGHTS:-auto-or-random}
	$(BIN)/ivadas evaluate --data .ivadas/demo-data

bench: $(BIN)/ivadas
	$(BIN)/ivadas bench --data ../shared/datasets/elpv --onnx-backbone ../shared/backbones/resnet50v2-imagenet/model.onnx

clean:
	rm -rf $(VENV) .ivadas .pytest_cache node_modules cdk.out test-output
