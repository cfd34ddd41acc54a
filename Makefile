# make demo : set up .venv and run the pipeline on a small synthetic dataset
# make test : set up .venv and run the test suite
# make lint : ruff format --check and ruff check (line length 120, ruff.toml)
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= demo_out

.PHONY: install demo test lint format clean strip-notebooks

install: $(VENV)/.installed

$(VENV)/.installed: setup.py constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'setuptools<81' wheel
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

demo: install
	$(PY) -m hpaseg.demo --out $(DEMO_OUT)

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff format --check hpaseg tests
	$(VENV)/bin/ruff check hpaseg tests

format: install
	$(VENV)/bin/ruff format hpaseg tests
	$(VENV)/bin/ruff check --fix hpaseg tests

clean:
	rm -rf $(DEMO_OUT) build *.egg-info

# Remove outputs from the evaluation notebooks before committing them.
strip-notebooks: install
	$(PY) -m hpaseg.notebook strip eval_notebooks/*.ipynb
