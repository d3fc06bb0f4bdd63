# Two entry points for a fresh machine: `make demo` and `make test`. Both create the virtual
# environment on first use; `pyproject.toml` or `constraints.txt` changes reinstall it. constraints.txt holds the
# exact versions the project is tested with (pyproject.toml declares the supported ranges).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/reidkit demo

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
