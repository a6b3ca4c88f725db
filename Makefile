# Two commands set everything up on a fresh machine:
#   make serve   create .venv, install wsgen, serve on the embedded defaults
#   make test    create .venv, install wsgen with test tools, run every check and test
#   make soak    the load soak against a real server process (about 3 minutes; CI runs it)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE_WS := tests/node/node_modules/ws/package.json

.PHONY: serve test soak bench generate clean system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/wsgen serve

# The seed's client-integration code runs under Node with the `ws` package.
$(NODE_WS): tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_WS)

# The protocol and HTTP API suites run a second time on PostgreSQL (a private cluster
# the tests start, as they start redis-server for the broker and scale-out tests).
PG_TESTS := tests/test_auth.py tests/test_chat_rooms.py tests/test_http_api.py \
	tests/test_lifecycle.py tests/test_metrics_health.py tests/test_protocol.py \
	tests/test_protocol_errors.py tests/test_rooms_api.py tests/test_user_route.py \
	tests/test_seed_client.py

# What the tests need besides Python: Node.js for the seed's client code, redis-server and
# PostgreSQL for the broker, scale-out and PostgreSQL suites. Installed with apt-get when
# missing and run as root (as in CI); otherwise named, so that they can be installed.
system-deps:
	@missing=""; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		|| missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else \
			echo "make test needs:$$missing (e.g. sudo apt-get install$$missing)"; \
		fi; \
	fi

test: system-deps $(STAMP) $(NODE_WS)
	$(BIN)/wsgen generate --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict core cli middleware
	$(BIN)/pytest
	$(BIN)/pytest --database postgresql $(PG_TESTS)

# Side-by-side benchmark against the shared harness's peers (see bench/run.py).
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/run.py
	$(BIN)/python bench/own.py

# 500 clients chatting for WSGEN_SOAK_SECONDS (120) against `wsgen serve`; see tests/test_soak.py.
soak: $(STAMP)
	$(BIN)/pytest -m soak -s tests/test_soak.py

generate: $(STAMP)
	$(BIN)/wsgen generate

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache .mypy_cache
