# make demo : set up .venv and run the pipeline on a small synthetic dataset
# make test : set up .venv and run the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= demo_out

.PHONY: install demo test clean strip-notebooks

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

clean:
	rm -rf $(DEMO_OUT) build *.egg-info

# Remove outputs from the evaluation notebooks before committing them.
strip-notebooks: install
	$(PY) -m hpaseg.notebook strip eval_notebooks/*.ipynb
