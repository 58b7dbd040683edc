# pykubelet: `make up` brings up a real local cluster; `make test` installs everything and runs
# every test (lint, types, unit, integration); `make check` is the fast loop (ruff, mypy, unit
# tests; no root, no daemons). Other targets are for benchmarks, conformance and VMs.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
GOBUILD := cluster/gobuild/build.sh

.PHONY: install venv up down test check lint unit integration stubs node-binaries conformance-binaries conformance clean

install:
	bash cluster/install-deps.sh

venv:
	bash cluster/install-deps.sh venv

up: install
	$(VENV)/bin/pykubelet up $(if $(NODES),--nodes $(NODES)) $(if $(PROXY_MODE),--proxy-mode $(PROXY_MODE))

down:
	$(VENV)/bin/pykubelet down

# The fast loop (also the pre-commit hook): lint, types and unit tests, under 2 minutes warm.
check: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/unit

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

unit: venv
	$(VENV)/bin/pytest -q tests/unit

integration: install
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/integration

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q -p no:cacheprovider -ra tests/unit tests/integration

stubs: install
	$(PY) -m cri.gen

# The real Go kubelet and kube-proxy (benchmarks only) and e2e.test + agnhost (conformance only).
node-binaries:
	bash $(GOBUILD) node

conformance-binaries:
	bash $(GOBUILD) e2e

# The upstream [NodeConformance] e2e tests against pykubelet (root; about an hour on 2 cores; NOT
# part of `make test`). Writes docs/conformance.md; JUnit XML and logs go to
# ~/.cache/pykubelet/conformance/<time>/. CONFORMANCE_ARGS: e.g. --procs 2, --focus REGEX.
# curl, netcat-openbsd and bash are copied from the host into the agnhost test image.
conformance: install conformance-binaries
	@for p in curl netcat-openbsd bash dash hostname; do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$p >/dev/null; \
	done
	$(PY) -m tests.conformance $(CONFORMANCE_ARGS)

# Pod start latency, pykubelet vs the real Go kubelet (root; ~8 min; see tests/bench/README.md).
.PHONY: bench
bench: install node-binaries
	bash $(GOBUILD) server etcd crictl
	$(PY) -m tests.bench.bench_pod_start $(BENCH_ARGS)

# The Service proxy against the real kube-proxy (root; in its own netns; 10k Services takes
# several minutes on nf_tables) and the CNI plugin against Debian's bridge plugin.
.PHONY: bench-proxy bench-cni
bench-proxy: install node-binaries
	bash $(GOBUILD) server etcd crictl
	$(PY) -m tests.bench.bench_proxy $(BENCH_ARGS)

bench-cni: install
	bash $(GOBUILD) server etcd crictl
	$(PY) -m tests.bench.bench_cni $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Real VM nodes (root; NOT part of `make test`): a Debian 12 box built offline with debootstrap
# (cached), vagrant-libvirt VMs under QEMU/TCG on our own bridge, joined to the host's control
# plane with the real `kubeadm join`, pykubelet as their kubelet under systemd; prints a table and
# removes everything it made. VAGRANT_TEST_ARGS: e.g. --workers 2 --proxy-mode ipvs, --keep.
.PHONY: vagrant-box vagrant-test
vagrant-box:
	bash vagrant/host/setup.sh
	bash vagrant/box/build.sh; rc=$$?; bash vagrant/host/teardown.sh; exit $$rc

vagrant-test: install
	$(PY) -m tests.vagrant $(VAGRANT_TEST_ARGS)
