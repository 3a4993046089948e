# Two commands a newcomer needs: `make run` and `make test`. Both build .venv themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint demo clean wheels browser ui-screenshots compile

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the project's metadata changed.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP) compile
	$(BIN)/quiver serve

demo: $(STAMP)
	$(BIN)/quiver demo

# strata-client 0.11 needs Python >= 3.12; its test installs it offline from this cache.
# strata-notebook 0.11 carries Strata's browser client (strata/_frontend), which the
# end-to-end test serves to Chromium. Downloaded once; without a network the tests
# skip and say why.
WHEELS := $(VENV)/wheels
$(WHEELS)/.strata-client: | $(BIN)/python
	-$(BIN)/python -m pip download -q -d $(WHEELS) --only-binary=:all: --python-version 3.12 \
		'strata-client==0.11.*' && touch $@
$(WHEELS)/.strata-notebook: | $(BIN)/python
	-$(BIN)/python -m pip download -q --no-deps -d $(WHEELS) --only-binary=:all: \
		--python-version 3.12 'strata-notebook==0.11.*' && touch $@

# flightsql-dbapi needs SQLAlchemy < 2, which the project's venv cannot hold; its test
# makes a venv of its own from these wheels, offline.
$(WHEELS)/.flightsql-dbapi: | $(BIN)/python
	-$(BIN)/python -m pip download -q -d $(WHEELS)/flightsql-dbapi --only-binary=:all: \
		'flightsql-dbapi==0.2.2' 'sqlalchemy>=1.4,<2' pandas && touch $@

wheels: $(WHEELS)/.strata-client $(WHEELS)/.strata-notebook $(WHEELS)/.flightsql-dbapi

# The browser tests drive Debian's Chromium (Playwright cannot download browsers here).
# Installed with apt when missing and we may; otherwise the browser test skips.
browser:
	@command -v chromium >/dev/null || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		>/dev/null 2>&1 || echo "could not install chromium: the browser test will skip"

# The project's own modules, compiled once: where PYTHONDONTWRITEBYTECODE is set, every
# process the tests start (servers, nodes, kernels) would otherwise compile them again.
PACKAGES := foundation catalog executors materialize flight notebooks rest quiver
compile: $(STAMP)
	@$(BIN)/python -m compileall -q -j 0 $(PACKAGES) >/dev/null

test: $(STAMP) wheels browser compile
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m pytest bench -q -p no:cacheprovider -o python_files='bench_*.py' --benchmark-columns=min,median,mean,max,rounds --benchmark-sort=name
	$(BIN)/python bench/side_by_side.py

# The web UI's screenshots in docs/ui/, taken in Chromium from a demo notebook.
ui-screenshots: $(STAMP) browser
	$(BIN)/python tools/ui_screenshots.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks
