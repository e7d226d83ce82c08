# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PROFILE ?= quick
# Keras remembers a backend in ~/.keras; always say which one.
export KERAS_BACKEND ?= tensorflow
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0

.PHONY: install run test test-fast lint data lock clean-venv

install: $(VENV)/.installed

# Reinstall when the package metadata or the lock changes.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[tf,dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name cellclf --display-name "cellclf (Python 3)" >/dev/null
	touch $@

data: install
	$(BIN)/cellclf data synth data/synth --seed 0 --if-missing

run: data
	$(BIN)/cellclf run --profile $(PROFILE) --data data/synth

# the whole suite on both cores; tests that share a series run in one worker (xdist_group)
test: install lint
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

# the unit tests only (no papermill series): the loop while editing
test-fast: install lint
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m "not slow"

# the package's layers (pyproject.toml, [tool.importlinter])
lint: install
	$(BIN)/lint-imports --no-cache

# Refresh the pinned versions from the current venv (review the diff before committing).
lock: install
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^cellclf' > constraints.txt

clean-venv:
	rm -rf $(VENV)
