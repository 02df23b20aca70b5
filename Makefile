# Shortcuts for the README's commands. `make book` is the main job, `make test` what CI runs.
# tests/test_makefile.py checks that every target's commands resolve.
PY := .venv/bin/python
PROFILE ?= quick

.PHONY: setup book test lab clean-book

setup:
	bash scripts/setup.sh

book: setup  ## execute every chapter (papermill) and build the HTML book; PROFILE=smoke|quick|paper
	$(PY) -m ihdm_core book --profile $(PROFILE)

test: setup
	$(PY) -m pytest -q

# setup writes .venv's JupyterLab settings override (ihdm_core.book.lab): book/*.py open as
# notebooks in this JupyterLab only, the user's own settings stay as they are.
lab: setup  ## JupyterLab on the checkout; chapter 11 holds the interactive explorers
	.venv/bin/jupyter lab --notebook-dir=.

clean-book:
	rm -rf _build figures/smoke figures/quick figures/paper
