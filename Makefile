# The README's two commands: `make demo` (the main job) and `make test` (what CI runs).
# Both install what they need first, so they work on a fresh machine.
PYTHON ?= python3
# Debian packages the browser tests and the PostgreSQL gradebook test need; installed when running as root (CI), else skipped with a note.
SYSTEM_PACKAGES = chromium fonts-dejavu-core fonts-liberation postgresql

.PHONY: install system-packages demo test

install:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[test]"

system-packages:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
	else \
		echo "not root: not installing $(SYSTEM_PACKAGES); install them yourself or the browser tests are skipped"; \
	fi

demo: install
	course demo

test: install system-packages
	course validate
	$(PYTHON) -m pytest --ignore=tests/browser
	$(PYTHON) -m pytest tests/browser
