PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/chronosq: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/chronosq
	$(BIN)/python examples/demo.py

test: $(BIN)/chronosq
	$(BIN)/python -m pytest -q

bench: $(BIN)/chronosq
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) demo-root
