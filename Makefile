# sanbridge: an FC/SAS/SCSI-to-iSCSI bridge gateway.
#   make demo       boot the appliance under QEMU with emulated SAS/SCSI/USB hardware
#   make demo-local run the gateway on this host with the embedded demo config
#   make test       every test: unit, race, fuzz smoke, iscsi-test-cu conformance,
#                   deploy-script failure paths, VM stage
#   make vmtest     only the QEMU stage
#   make bench      side-by-side benchmarks with tgtd (prints ratios)
#   make appliance  build the appliance image

GO       ?= go
BIN      := sanbridge
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: all build static demo demo-local test unit fuzz conformance deploytest vmtest bench appliance deps vet clean

all: build

build: deps
	$(GO) build -o $(BIN) ./cmd/sanbridge

static:
	CGO_ENABLED=0 $(GO) build -tags nousb -trimpath -o $(BIN) ./cmd/sanbridge

demo:
	bash deploy/rig/demo.sh

demo-local: build
	./$(BIN) serve --config deploy/examples/demo.hcl

# Host tools the tests talk to (libiscsi's initiator tools; open-isns'
# isnsd and isnsadm for the iSNS client; systemd-analyze to verify the
# unit; etcd for the cluster tests, which start their own members on
# loopback ports), and libusb's headers for the cgo build of sgio/bot (gousb). tgt is
# not installed here: its package starts a service on port 3260 (the bench
# and the rig bring their own tgtd). Recommends are left out
# (open-isns-utils would pull in the isnsdd discovery daemon); the iSNS
# tests run their own isnsd on a loopback port.
deps:
	@need=""; \
	command -v iscsi-test-cu >/dev/null || need="$$need libiscsi-bin"; \
	command -v pkg-config >/dev/null || need="$$need pkg-config"; \
	pkg-config --exists libusb-1.0 2>/dev/null || need="$$need libusb-1.0-0-dev"; \
	command -v isnsd >/dev/null || [ -x /usr/sbin/isnsd ] || need="$$need open-isns-server"; \
	command -v isnsadm >/dev/null || [ -x /usr/sbin/isnsadm ] || need="$$need open-isns-utils"; \
	command -v systemd-analyze >/dev/null || need="$$need systemd"; \
	command -v etcd >/dev/null || need="$$need etcd-server"; \
	if [ -n "$$need" ]; then \
		echo "installing:$$need"; \
		apt-get update -q || { echo "make deps: apt-get update failed"; exit 1; }; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$need || \
			{ echo "make deps: apt-get install$$need failed (check: apt-cache policy$$need)"; exit 1; }; \
	fi

# vet also builds outside Linux (darwin): sgio's "unsupported" stubs
# must keep up with its Linux API.
vet: deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) build -tags nousb -o /dev/null ./cmd/sanbridge
	GOOS=darwin CGO_ENABLED=0 $(GO) vet -tags nousb ./...

unit: deps
	SANBRIDGE_REQUIRE_PEERS=1 $(GO) test -race -count=1 -timeout 20m ./...
	CGO_ENABLED=0 $(GO) test -tags nousb -count=1 ./sgio/bot/ ./cmd/sanbridge/

# Every fuzz target for a bounded number of new inputs (the committed corpora
# run in 'unit'). A count, not a duration: a time-bounded run can end in a
# spurious "context deadline exceeded" on a loaded machine.
FUZZTIME ?= 5000x
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg >/tmp/sanbridge-fuzz.log 2>&1 || { cat /tmp/sanbridge-fuzz.log; exit 1; }; \
		done; \
	done

conformance: deps
	SANBRIDGE_REQUIRE_PEERS=1 $(GO) test -count=1 -run 'TestConformance' -v -timeout 20m ./bridge/

# The deploy scripts' failure paths: each failing step must name itself.
deploytest:
	bash deploy/test/scripts.sh

vmtest:
	bash deploy/rig/vmtest.sh

appliance:
	bash deploy/appliance/build.sh

bench: deps build
	bash deploy/bench/bench.sh

test: deps vet unit fuzz deploytest vmtest
	@echo "make test: all stages passed"

clean:
	rm -f $(BIN)
