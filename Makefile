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
# Debian packages: the sandbox every grading kernel runs in, and what the browser, hub and PostgreSQL tests need
# (Node and npm for the hub's proxy). Installed when running as root (CI); otherwise the command says what to install.
DEMO_PACKAGES = bubblewrap
TEST_PACKAGES = bubblewrap chromium fonts-dejavu-core fonts-liberation postgresql
# The hub test's proxy needs npm: Debian's nodejs and npm, installed only where no npm is found (a Node.js from
# elsewhere, e.g. NodeSource's, brings its own npm and conflicts with Debian's).
HUB_PACKAGES = nodejs npm
# The package's extras: the tests' tools, and JupyterHub for the hub test.
EXTRAS = test
test: EXTRAS = test,hub
# What `npm ci` writes last in hub/node_modules.
HUB_MODULES = hub/node_modules/.package-lock.json

.PHONY: install demo test

$(BIN)/python:
	python3 -m venv $(CURDIR)/.venv

install: $(BIN)/python
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[$(EXTRAS)]"

define system_packages
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1) >/dev/null; \
	elif ! command -v bwrap >/dev/null; then \
		echo "not root: install $(1) yourself (grading needs bubblewrap; the browser tests need chromium, the hub test npm)"; \
	fi
endef

demo: install
	$(call system_packages,$(DEMO_PACKAGES))
	$(BIN)/course demo

# The hub's proxy, from the npm registry at the versions hub/package-lock.json pins.
$(HUB_MODULES): hub/package-lock.json
	@if command -v npm >/dev/null; then npm ci --prefix hub --no-audit --no-fund --loglevel=error; \
	else echo "npm is missing: the hub test will say so"; fi

# The browser suite and the hub test run at the same time (each with its own servers, browser and screenshot
# folder); the hub test's output follows the browser suite's.
test: install
	$(call system_packages,$(TEST_PACKAGES))
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(HUB_PACKAGES) >/dev/null; } || true
	@$(MAKE) --no-print-directory $(HUB_MODULES)
	$(BIN)/course validate
	$(PYTHON) -m pytest --ignore=tests/browser --ignore=tests/hub
	@mkdir -p build; echo "$(PYTHON) -m pytest tests/hub > build/hub-tests.log (in the background)"; \
	$(PYTHON) -m pytest tests/hub > build/hub-tests.log 2>&1 & hub=$$!; \
	$(PYTHON) -m pytest tests/browser; browser=$$?; \
	wait $$hub; hub=$$?; echo "--- tests/hub (exit status $$hub):"; cat build/hub-tests.log; \
	[ $$browser = 0 ] && [ $$hub = 0 ]
