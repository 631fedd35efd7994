# relay: the two quick-start commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEV_CONFIG ?= dev-config.json

.PHONY: install run test test-pure lint bench clean grpc-proto

# Seconds of each coverage-guided fuzz run in `make test` (five targets; docs/fuzzing.md).
FUZZ_SECONDS ?= 30

# Integration files the pure-Python twin run leaves out: they exercise nothing of the fast
# path that the files it runs do not (gRPC, proxies' backends, JWKS, OpenAPI, TLS to Redis,
# the Node.js SDK); they run once, with the extension, in the first pass.
TWIN_SKIP := test_grpc_api.py test_uni_grpc.py test_proxy.py test_proxy_kinds.py test_proxy_stream.py test_jwks.py \
	test_openapi_schemathesis.py test_redis_tls.py test_node_sdk.py test_ports_tls.py

$(STAMP): pyproject.toml setup.py relay/_fastpath.pyx
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel Cython
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/python setup.py -q build_ext --inplace
	$(BIN)/python -m compileall -q relay
	touch $(STAMP)

install: $(STAMP)

## Start relay on the embedded default (memory engine) with a generated dev config.
run: install
	$(BIN)/python scripts/dev_config.py $(DEV_CONFIG)
	$(BIN)/relay --config $(DEV_CONFIG)

## Install and run every test: lint (format, ruff, mypy --strict, the layer contract, no
## import cycles), the suite with the Cython fast path and the coverage floor of the pure
## layers (pyproject: tool.coverage), then the pure-Python twin (RELAY_NO_EXTENSIONS=1).
test: install lint
	RELAY_FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python -m pytest -q --cov
	RELAY_NO_EXTENSIONS=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/unit tests/integration -x \
		$(addprefix --ignore=tests/integration/,$(TWIN_SKIP))

lint: install
	$(BIN)/ruff format --check relay tests scripts fuzz $(wildcard bench)
	$(BIN)/ruff check relay tests scripts fuzz $(wildcard bench)
	$(BIN)/mypy relay
	$(BIN)/lint-imports
	$(BIN)/python scripts/check_cycles.py relay bench

## Regenerate relay/api/grpc/*_pb2.py[i] from the .proto files (commit the result).
grpc-proto: install
	$(BIN)/python scripts/gen_grpc.py

bench: install
	$(BIN)/python -m bench --help

clean:
	rm -rf build *.egg-info relay/_fastpath.c relay/_fastpath*.so $(VENV)
