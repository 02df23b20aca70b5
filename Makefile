# Shortcuts for the README's commands. `make book` is the main job, `make test` what CI runs.
PY := .venv/bin/python
PROFILE ?= quick

.PHONY: setup book test lab clean-book

setup:
	bash scripts/setup.sh

book: setup  ## execute every chapter (papermill) and build the HTML book; PROFILE=smoke|quick|paper
	$(PY) -m ihdm_core.pipeline --profile $(PROFILE)

test: setup
	$(PY) -m pytest -q

lab: setup  ## JupyterLab where the book/*.py sources open as notebooks (jupytext)
	.venv/bin/jupytext-config set-default-viewer python
	.venv/bin/jupyter lab --notebook-dir=. book/

clean-book:
	rm -rf _build figures/smoke figures/quick figures/paper
