# The README's two commands: `make demo` (the main job) and `make test` (what CI runs).
# Both install what they need first, so they work on a fresh machine.
PYTHON ?= python3

.PHONY: install demo test

install:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[test]"

demo: install
	course demo

test: install
	course validate
	$(PYTHON) -m pytest
