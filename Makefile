# Two commands for a newcomer on a fresh machine (see README.md):
#   make conformance   the main job: the conformance run on the reference target, reports in reports/
#   make test          every test: lint, unit tests, features on every target (CI runs this)
# Both bootstrap a virtualenv with tox first; `make test` also prepares the host for the
# emulated LPAR (Debian packages, the s390x pod VM assets, libvirtd) when run as root.

VENV ?= .venv
TOX  := $(VENV)/bin/tox

.PHONY: conformance test host clean

$(TOX):
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip 'tox>=4.11'

conformance: $(TOX)
	$(TOX) -e conformance

host:
	bash .ci/setup-host

test: $(TOX) host
	$(TOX)

clean:
	rm -rf .tox reports/*.xml reports/*.json reports/*.html
