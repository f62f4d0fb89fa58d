# Build: docker build -t walhook .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/walhook/walhook/internal/app.Version=${VERSION}" -o /out/walhook ./cmd/walhook

# Static binary, non-root. In a container walhook uses database.url
# (WALHOOK_DATABASE_URL); the embedded PostgreSQL is for local use.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/walhook /walhook
COPY config/walhook.yaml /etc/walhook/walhook.yaml
ENV WALHOOK_LISTEN=0.0.0.0:8080 WALHOOK_ADMIN_LISTEN=0.0.0.0:9090
EXPOSE 8080 9090
USER nonroot:nonroot
# Probes: GET :9090/healthz (liveness) and :9090/readyz (readiness).
ENTRYPOINT ["/walhook"]
CMD ["serve", "--config", "/etc/walhook/walhook.yaml"]
