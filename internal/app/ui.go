package app

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/walhook/walhook/internal/api"
	"github.com/walhook/walhook/internal/auth"
	"github.com/walhook/walhook/internal/config"
	"github.com/walhook/walhook/internal/manage"
	"github.com/walhook/walhook/internal/ui"
)

// withDashboard serves the dashboard (package ui) at api.prefix beside the
// JSON API: <prefix>api and everything below it is the API's, the rest of
// the prefix the dashboard's. Without ui.enabled it is the API alone.
func withDashboard(cfg *config.Config, authn auth.Authenticator, svc *manage.Service, sender manage.Sender, apiHandler http.Handler, log *slog.Logger) (http.Handler, error) {
	if !cfg.UI.Enabled {
		return apiHandler, nil
	}
	opts := ui.Options{Prefix: cfg.API.Prefix, Mode: cfg.Auth.Mode, Auth: authn, Service: svc,
		UserAgent: cfg.Delivery.UserAgent, SessionTTL: cfg.UI.SessionTTL, Logger: log}
	if c, ok := sender.(interface{ Circuits() map[string]string }); ok {
		opts.Circuits = c.Circuits
	}
	dash, err := ui.Handler(opts)
	if err != nil {
		return nil, err
	}
	base := api.Base(cfg.API.Prefix)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// proxy.Mount hands over clean paths only.
		if p := r.URL.Path; p == base || strings.HasPrefix(p, base+"/") {
			apiHandler.ServeHTTP(w, r)
			return
		}
		dash.ServeHTTP(w, r)
	}), nil
}
