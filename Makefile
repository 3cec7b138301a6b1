# Custos — two commands: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test fuzz venv migrate bench clean chromium

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall only when a requirements file changed.
$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet --pre -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

## make run: migrations + devnet + Celery worker + beat + API on embedded defaults.
run: $(STAMP)
	$(PY) -m tools.stack

## make test: the whole suite (PostgreSQL/Redis when reachable; required under CI=true).
test: $(STAMP) chromium
	$(PY) -m pytest tests

## make fuzz: the schemathesis fuzz tests with many more examples per operation (FUZZ_MAX_EXAMPLES).
fuzz: $(STAMP)
	FUZZ_MAX_EXAMPLES=$${FUZZ_MAX_EXAMPLES:-150} $(PY) -m pytest tests/fuzz -p no:cacheprovider

## Chromium for the admin console's browser tests (apt-get when missing and root; idempotent).
chromium:
	@sh tests/browser/ensure_chromium.sh

migrate: $(STAMP)
	$(PY) -m flask --app wsgi db upgrade

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf var .pytest_cache
