# MYNO bridge. `make run` and `make test` are the two entry points; see README.md.
GO       ?= go
FUZZTIME ?= 20s

.PHONY: run test test-short bench fuzz lint build screenshots

## run: the whole system on embedded defaults: the embedded MQTT broker,
## the bridge (NETCONF on 127.0.0.1:8830), four simulated devices and the
## web console (http://127.0.0.1:8080/).
## Data (registry, host key, users) goes to .data/. The admin password is
## printed on first start, or set MYNO_ADMIN_PASSWORD.
run:
	$(GO) run ./cmd/myno demo --data-dir .data --http-listen 127.0.0.1:9830 --console-metrics-listen 127.0.0.1:9831

## test: the whole suite, with the race detector. Peer tools (yanglint, ...)
## must be installed; with CI=true a missing one fails the suite. The
## console's browser tests run after the rest, alone: Chromium's CPU, on
## 2 cores, made timing-bound tests of other packages miss their deadlines.
test:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v '/console$$')
	$(GO) test -race -count=1 ./console

## test-short: the quick lane, under a minute on 2 cores: every package,
## without the race detector and with -short, leaving out the slowest
## tests (2-5 s each, mostly waiting out timeouts and restarts):
##  - skipped by name here, in packages that do not check -short:
##    bridge: the scale-out cluster (TestCluster*), the registry across a
##    bridge restart, Mosquitto restarted under the bridge, the broker over
##    TLS; mup/e2e/manager: tampered updates given up after resends, and
##    repeated/old notifies; cmd/myno: the whole `myno demo`;
##  - skipped under -short by the tests themselves: devices' reconnect
##    after broker restarts, netconf's slow-client timeouts.
## `make test` runs them all, with -race.
SHORT_SKIP = ^(TestCluster.*|TestRegistrySurvivesRestart|TestExternalMosquitto|TestExternalBrokerOverTLS|TestTamperedUpdateIsRefused|TestRepeatedAndOldNotifiesKeepTheChannel|TestDemoCommand|TestBrowser.*)$$
test-short:
	$(GO) test -short -count=1 -skip '$(SHORT_SKIP)' ./...

## bench: every Go benchmark, with allocations.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## fuzz: a short run ($(FUZZTIME)) of every fuzz target in every package.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$target"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $$pkg; \
	  done; \
	done

## lint: gofmt, go vet, then staticcheck. staticcheck is pinned as a tool
## in go.mod (honnef.co/go/tools), so `go tool` builds the same version for
## everyone with the module's Go; Debian's package is too old for Go 1.26.
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

build:
	$(GO) build -o bin/myno ./cmd/myno

## screenshots: the console's main pages, taken with Debian's chromium by
## the browser tests, into docs/screenshots/ (make test writes them to a
## temporary directory instead).
screenshots:
	MYNO_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run 'TestBrowserScreenshots' ./console

## bench-external: everything measured from outside the bridge (issue 17;
## docs/bench/external/all.sh), each party its own process: NETCONF against
## yuma123's netconfd (behind sshd) with a Go and a paramiko client, with no
## devices and with 10,000; firmware updates against the broker's floors;
## 10,000 devices of 3 shapes on both brokers; a 3-instance cluster's lag. Writes the tables to
## docs/bench/external/RESULTS.md. About 20 minutes; not part of make test.
## Needs Debian's netconfd, openssh-server, mosquitto, etcd-server and python3-paramiko.
## The parts alone: bench-netconf, bench-firmware, bench-scale, bench-cluster.
.PHONY: bench-external bench-netconf bench-firmware
bench-external:
	GO=$(GO) docs/bench/external/all.sh

## bench-netconf: NETCONF alone (docs/bench/external/run.sh; knobs SESSIONS,
## DURATION, ROUNDS, DEVICES, ...: see the script). About two minutes.
bench-netconf:
	GO=$(GO) docs/bench/external/run.sh

## bench-firmware: myno update against the raw-publish ceiling and the
## broker round trip, on both brokers (docs/bench/external/firmware.sh).
bench-firmware:
	GO=$(GO) docs/bench/external/firmware.sh

## bench-scale: 10,000 devices of 3 shapes, measured from outside the bridge
## (issue 17; docs/bench/external/scale.sh): registration time, bridge CPU
## and RSS per device, the whole <get/>, a restart with the fleet running,
## device rpcs on random devices; on the embedded broker, then on Mosquitto.
## Every party is its own process on loopback. About 10 minutes on 2 cores.
## Knobs (DEVICES, BROKERS, REV, PROFILE, ...): see the script.
.PHONY: bench-scale
bench-scale:
	GO=$(GO) docs/bench/external/scale.sh

## bench-cluster: a 3-instance cluster's lag at 2,000 devices (issue 18;
## docs/bench/external/cluster.sh): three bridge processes on Mosquitto and
## a 3-member etcd, a fleet registering; the time until every instance
## holds every device, and each replicated registration's lag. About a
## minute. Needs Debian's etcd-server and mosquitto.
.PHONY: bench-cluster
bench-cluster:
	GO=$(GO) docs/bench/external/cluster.sh

## bench-config: the configuration datastore from outside (issue 20;
## docs/bench/external/config.sh): ncclient fills running for 1,000
## thermostats and edits one at a time, against the bridge and against
## netconfd holding the same shape; then the fleet is killed and started
## again, and the time until every device is configured again. About a
## minute. Needs Debian's netconfd, openssh-server and python3-ncclient.
.PHONY: bench-config
bench-config:
	GO=$(GO) docs/bench/external/config.sh
