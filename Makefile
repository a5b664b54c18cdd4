# vc5 — everything a fresh Debian 12 machine needs, as root:
#   make deps    install build, run and test dependencies from Debian (idempotent)
#   make check   run every test tier
#   make demo    run the lab (issue 8)
#   make deb     build the .debs into dist/
#   make bench   run the benchmarks, report under bench/out/
#   make lint    flake8

PY      := /usr/bin/python3
# Debian's python, never a pyenv one that is first on PATH (it cannot import bcc).
export PATH := /usr/sbin:/usr/bin:/sbin:/bin
export PYTHONPATH := $(CURDIR)/services
export PYTHONDONTWRITEBYTECODE := 1
PYTEST  := $(PY) -m pytest -p no:cacheprovider

KVER    := $(shell uname -r)

# Run time: what the services import.
RUN_DEPS  := python3 python3-yaml python3-systemd python3-dbus-next python3-pyroute2 \
             python3-prometheus-client python3-aiohttp python3-dnspython \
             python3-bpfcc clang llvm libbpf1 bpftool linux-headers-amd64 \
             iproute2 ethtool dbus systemd
# Tests: real peers, real servers, packet builders, a booted systemd.
TEST_DEPS := python3-pytest python3-hypothesis python3-scapy flake8 \
             bird2 gobgpd frr nginx-light dnsmasq-base wrk tcpdump iputils-ping \
             systemd-container procps psmisc chromium man-db python3-matplotlib
# Packaging.
BUILD_DEPS := debhelper dh-python python3-all python3-setuptools build-essential fakeroot \
              pybuild-plugin-pyproject lintian

ALL_DEPS := $(RUN_DEPS) $(TEST_DEPS) $(BUILD_DEPS)

.PHONY: deps headers bpffs check unit bpf dbus integration system e2e lint deb bench demo clean

deps:
	@missing=""; for p in $(ALL_DEPS); do \
	  [ "$$(dpkg-query -W -f='$${Status}' $$p 2>/dev/null)" = "install ok installed" ] || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing from Debian:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null || exit 1; \
	fi
	@$(MAKE) -s headers bpffs

# bcc compiles against /lib/modules/$(uname -r)/build. These kernels ship no
# headers package of their own: link Debian's newest -amd64 headers as build
# and the matching -common as source (Debian splits them; bcc needs both).
headers:
	@if [ ! -e /lib/modules/$(KVER)/build/include ]; then \
	  h=$$(ls -d /usr/src/linux-headers-*-amd64 | sort -V | tail -n 1); \
	  c=$${h%-amd64}-common; \
	  [ -d "$$h" ] && [ -d "$$c" ] || { echo "no linux-headers-*-amd64 in /usr/src" >&2; exit 1; }; \
	  mkdir -p /lib/modules/$(KVER); \
	  ln -sfn $$h /lib/modules/$(KVER)/build; \
	  ln -sfn $$c /lib/modules/$(KVER)/source; \
	  echo "linked kernel headers: $$h"; \
	fi

bpffs:
	@mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

# Every tier that exists. A tier skips only with a stated reason when the
# machine truly lacks what it needs (never as root on these VMs).
check: deps lint
	$(PYTEST) -q -ra tests

unit:
	$(PYTEST) -q tests/unit

bpf dbus integration system e2e:
	$(PYTEST) -q -ra tests/$@

lint:
	$(PY) -m flake8 services tests bench

deb:
	rm -rf dist && mkdir -p dist
	dpkg-buildpackage -us -uc -b
	debian/rules clean
	mv ../python3-vc5_*_all.deb ../vc5_*_all.deb ../vc5-*_all.deb ../vc5_*.changes ../vc5_*.buildinfo dist/
	lintian --fail-on error,warning -I --pedantic dist/vc5_*.changes

bench: deps
	$(PY) bench/run_all.py

demo: deps
	$(PY) -m tests.lab.demo

clean:
	rm -rf dist build bench/out .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
