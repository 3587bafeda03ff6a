# syntax=docker/dockerfile:1.7
#
# The outage replay, for a shop that runs already (the compose stack):
#
#   docker compose run --rm replay          (see the replay service in docker-compose.yml)
#
# The build context is the repository root. The loadtest module builds on its
# own (GOWORK=off, pkg through its replace directive).

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
ARG VERSION=dev
WORKDIR /src
ENV CGO_ENABLED=0 GOWORK=off GOFLAGS="-trimpath -tags=nomsgpack"

COPY pkg/go.mod pkg/go.sum pkg/
COPY loadtest/go.mod loadtest/go.sum loadtest/
RUN --mount=type=cache,target=/go/pkg/mod \
    cd loadtest && go mod download

COPY pkg/ pkg/
COPY loadtest/ loadtest/
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    cd loadtest && go build -ldflags="-s -w" -o /out/replay ./cmd/replay

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="stampede-replay" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/stampede-shop/stampede"
COPY --from=build /out/replay /replay
USER nonroot:nonroot
WORKDIR /work
ENTRYPOINT ["/replay"]
