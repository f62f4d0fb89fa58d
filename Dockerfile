# syntax=docker/dockerfile:1
# Build:  docker build -t walhook --build-arg VERSION=$(git describe --always) .
# Run:    docker run -e WALHOOK_DATABASE_URL=postgres://... -e WALHOOK_AUTH_TOKENS=... -p 8080:8080 -p 9090:9090 walhook
# Needs only this repository as build context (see deploy/README.md).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
# Only the walhook sources: deploy/, docs/ and a local .walhook/ data
# directory stay out of the build.
COPY cmd/ cmd/
COPY internal/ internal/
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/walhook/walhook/internal/app.Version=${VERSION}" \
      -o /out/walhook ./cmd/walhook

# Static binary, non-root (uid 65532), no shell: about 2 MB plus walhook.
# In a container walhook uses database.url (WALHOOK_DATABASE_URL); the
# embedded PostgreSQL is for local use and is not in this image.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="walhook" \
      org.opencontainers.image.description="Signed webhooks from a Postgres outbox, streamed by logical replication" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/walhook /walhook
# The reference configuration (every key at its default); mount your own
# file over it or set WALHOOK_* variables.
COPY config/walhook.yaml /etc/walhook/walhook.yaml
# The environment outranks the YAML file: these two bind to all interfaces
# of the container whatever the file says; override them with -e if needed.
ENV WALHOOK_LISTEN=0.0.0.0:8080 WALHOOK_ADMIN_LISTEN=0.0.0.0:9090
# 8080: API (and reverse proxy to the app); 9090: /metrics, /healthz, /readyz.
EXPOSE 8080 9090
USER nonroot:nonroot
# No HEALTHCHECK: the image has no shell or curl to run one. Probe over HTTP
# from outside instead (Kubernetes httpGet, a load balancer, Prometheus):
#   liveness:  GET :9090/healthz  (200 while the process serves)
#   readiness: GET :9090/readyz   (200 when the database answers, migrations
#              are applied and replication streams; 503 + JSON problems otherwise)
ENTRYPOINT ["/walhook"]
CMD ["serve", "--config", "/etc/walhook/walhook.yaml"]
