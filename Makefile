# deskpilot: `make run` starts the app, `make test` runs the whole suite; both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch is pinned so pip takes one known wheel (CPU here, CUDA-enabled from PyPI on Linux GPUs).
TORCH  ?= torch==2.13.0
# The venv `transformers serve` runs from in tests/servers (installed by `make test`).
SERVE_VENV ?= .venv-serve

.PHONY: run test lint bench venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[local,test]"
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) main.py $(ARGS)

test: venv
	./scripts/system-deps.sh
	@# transformers serve (tests/servers) needs a venv of its own (torchvision beside its torch);
	@# when it cannot be installed those tests skip, naming what is missing.
	@tests/servers/serve_venv.sh $(SERVE_VENV) >/dev/null 2>&1 || \
		echo "note: could not install $(SERVE_VENV) (tests/servers/serve_venv.sh); tests/servers will skip"
	DESKPILOT_SERVE_PYTHON=$$(test -f $(SERVE_VENV)/.installed && echo $(abspath $(SERVE_VENV))/bin/python) \
		HF_HUB_OFFLINE=1 QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: venv
	HF_HUB_OFFLINE=1 $(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
