# Two commands for a newcomer on a fresh machine (see README.md):
#   make conformance   the main job: the conformance run on the reference target, reports in reports/
#   make test          every test: lint, unit tests, features on every target (CI runs this)
# Both leave the command in .venv/bin/peerpods-conformance, with every extra a user needs
# (webhook; lpar too once libvirt's headers are installed, which `make host` does as root).
# `make test` also prepares the host for the emulated LPAR (Debian packages, the s390x pod VM
# assets, libvirtd) when run as root.

VENV ?= .venv
TOX  := $(VENV)/bin/tox
CLI  := $(VENV)/bin/peerpods-conformance

.PHONY: conformance test host cli clean

$(TOX):
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip 'tox>=4.11'

# The user's command. libvirt-python (the lpar extra) builds from source against libvirt-dev.
cli: $(TOX)
	@extras=webhook; \
	if pkg-config --exists libvirt 2>/dev/null; then extras=webhook,lpar; \
	else echo "make: installing without the lpar extra: libvirt-dev is missing (as root: make host)"; fi; \
	$(VENV)/bin/python -m pip install --quiet -e ".[$$extras]" && \
	echo "make: the command is $(CLI) (extras: $$extras)"

conformance: cli
	$(CLI) run --target reference --report-dir reports

host:
	bash .ci/setup-host

test: $(TOX) host cli
	$(TOX)

clean:
	rm -rf .tox reports/*.xml reports/*.json reports/*.html reports/SHA256SUMS
