# Stampede's front door. `make help` lists the targets.

GO            ?= go
MODULE        := github.com/stampede-shop/stampede
# Every module of the workspace (go.work): pkg, the services, loadtest.
PACKAGES      := $(MODULE)/...
SERVICES      := user search order
GOLANGCI_LINT := github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0
PG            ?= postgres://postgres@127.0.0.1:5432
TEST_FLAGS    ?= -race -count=1 -timeout 10m
# Gin's own build tag leaves out its MessagePack binding, which no service
# uses: 130,000 lines less to compile on a machine's first build, binaries
# 15 % smaller. Exported, so the replay builds the services with it too.
GOFLAGS       ?= -tags=nomsgpack
export GOFLAGS

.PHONY: help test vet unit fuzz bench build dev seed replay lint manifests tidy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

test: vet ## vet, then every module's unit and integration tests with -race (needs local Postgres, Redis, NATS)
	$(GO) test $(TEST_FLAGS) $(PACKAGES)

vet: ## go vet every module
	$(GO) vet $(PACKAGES)

unit: ## only the tests that need no Postgres, Redis or NATS
	$(GO) test -race -count=1 $(MODULE)/pkg/config/... $(MODULE)/pkg/fixes/... $(MODULE)/pkg/web/... $(MODULE)/pkg/logging/... \
		$(MODULE)/pkg/catalog/... $(MODULE)/pkg/loopback/... $(MODULE)/services/user/account/... $(MODULE)/services/search/products/... \
		$(MODULE)/services/order/orders/...

# Each fuzz target runs this long under `make fuzz` (`make test` runs only
# their seeds).
FUZZTIME      ?= 1m

fuzz: ## run every fuzz target (func Fuzz...) for FUZZTIME each, 1m by default: bad input gets a 4xx, never a 500
	@for f in $$(grep -rlE --include='*_test.go' '^func Fuzz' pkg services loadtest); do \
		for n in $$(sed -nE 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/p' $$f); do \
			echo "▶ $$n in ./$$(dirname $$f), $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$n$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f) || exit 1; \
		done; \
	done

bench: ## the resilience benchmarks, the side-by-side with failsafe-go and go-zero, an order's round trips, the outbox's publishes
	$(GO) test -run XXX -bench . -benchmem ./pkg/resilience/
	$(GO) test -run XXX -bench Place -benchmem ./services/order/postgres/
	$(GO) test -run XXX -bench Publish ./services/order/nats/
	$(GO) test -count=1 -v -run SideBySide ./loadtest/limiters/

# Built as `make replay` builds them (the images add -trimpath: deploy/docker),
# so each reuses the packages the other compiled: on a fresh machine a first
# `make seed` after a `make replay` took 87 s with -trimpath, 10 s without.
build: ## build the service binaries into bin/
	@mkdir -p bin
	@for s in $(SERVICES); do echo "go build -o bin/$$s ./services/$$s"; $(GO) build -o bin/$$s ./services/$$s || exit 1; done

seed: build ## create the catalog (search) and the inventory (order) of 10,000 products in the local databases
	$(GO) run ./pkg/cmd/createdb $(PG)/stampede_search $(PG)/stampede_order
	DATABASE_URL="$(PG)/stampede_search?sslmode=disable" bin/search seed
	DATABASE_URL="$(PG)/stampede_order?sslmode=disable" bin/order seed

dev: build ## run the services natively against the local Postgres, Redis and NATS (Ctrl-C stops them gracefully)
	$(GO) run ./pkg/cmd/createdb $(foreach s,$(SERVICES),$(PG)/stampede_$(s))
	PG=$(PG) SERVICES="$(SERVICES)" scripts/dev.sh

# The services and the replay's packages (all but its main) are compiled
# here, where they can be counted as they compile (a first run's minutes):
# the services into the directory and with the flags of the replay's own
# build (loadtest/stack.Build), which then finds them up to date; go run is
# left the replay's main package to compile and link.
replay: ## the outage replay: capacity, then promo under naive and resilient; report in loadtest/out/ (about 5 min; REPLAY_FLAGS=-help)
	@echo "▶ compiling the services and the replay (a machine's first run fetches and compiles their dependencies: 1–3 min on 2 cores)"
	@GO=$(GO) scripts/compile.sh -buildvcs=false -o loadtest/out/.bin/ $(addprefix ./services/,$(SERVICES)) ./loadtest/replay
	$(GO) run ./loadtest/cmd/replay $(REPLAY_FLAGS)

lint: ## golangci-lint at a pinned version (config: .golangci.yml)
	$(GO) run $(GOLANGCI_LINT) run $(foreach m,pkg loadtest deploy $(addprefix services/,$(SERVICES)),./$(m)/...)

manifests: ## render the Kubernetes overlays into bin/k8s/ (kubectl kustomize)
	@mkdir -p bin/k8s
	@for o in naive resilient; do kubectl kustomize deploy/k8s/overlays/$$o > bin/k8s/$$o.yaml || exit 1; echo "bin/k8s/$$o.yaml"; done

tidy: ## go mod tidy in every module
	@for m in $$($(GO) list -m -f '{{.Dir}}'); do (cd $$m && $(GO) mod tidy) || exit 1; done

clean: ## remove build output and replay reports
	rm -rf bin loadtest/out
