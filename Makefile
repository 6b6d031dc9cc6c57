# dockyard — `make demo` sets up and runs the main job; `make test` runs every test CI runs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := runc conmon containernetworking-plugins busybox-static iptables skopeo \
	docker-registry debootstrap etcd-server podman
DATA_DIR ?= /var/lib/dockyard-demo

.PHONY: setup apt venv demo demo-down test test-unit lint bench

setup: apt venv

apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: setup
	bash scripts/demo.sh "$(DATA_DIR)"

demo-down:
	bash scripts/demo-down.sh "$(DATA_DIR)"

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider tests

test-unit: setup
	$(VENV)/bin/pytest -q -m unit tests

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
