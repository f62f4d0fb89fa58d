// Package deploy holds walhook's deployment files: the Grafana dashboard,
// Prometheus rules and configuration, a docker compose demo (with a sample
// app and a webhook receiver under compose/) and Kubernetes sidecar
// manifests. It has no Go API; its tests check that every file parses, that
// every walhook configuration in it passes `walhook config check`, and that
// every metric the dashboard and the alert rules query is one walhook
// exports. See README.md.
package deploy
