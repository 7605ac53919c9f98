# The README's two commands: `make demo` (the main job) and `make test` (what CI runs).
# Both install what they need first, so they work on a fresh machine. Without an active virtual or conda
# environment they create and use .venv inside this folder (Debian's and Ubuntu's system Python refuse
# `pip install`).
ifneq ($(VIRTUAL_ENV),)
BIN := $(VIRTUAL_ENV)/bin
else ifneq ($(CONDA_PREFIX),)
BIN := $(CONDA_PREFIX)/bin
else
BIN := $(CURDIR)/.venv/bin
endif
PYTHON := $(BIN)/python
# Debian packages: the sandbox every grading kernel runs in, and what the browser and PostgreSQL tests need.
# Installed when running as root (CI); otherwise the command says what to install.
DEMO_PACKAGES = bubblewrap
TEST_PACKAGES = bubblewrap chromium fonts-dejavu-core fonts-liberation postgresql

.PHONY: install demo test

$(BIN)/python:
	python3 -m venv $(CURDIR)/.venv

install: $(BIN)/python
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[test]"

define system_packages
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1) >/dev/null; \
	elif ! command -v bwrap >/dev/null; then \
		echo "not root: install $(1) yourself (grading needs bubblewrap; the browser tests need chromium)"; \
	fi
endef

demo: install
	$(call system_packages,$(DEMO_PACKAGES))
	$(BIN)/course demo

test: install
	$(call system_packages,$(TEST_PACKAGES))
	$(BIN)/course validate
	$(PYTHON) -m pytest --ignore=tests/browser --ignore=tests/hub
	$(PYTHON) -m pytest tests/browser
