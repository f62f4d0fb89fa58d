package app

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/walhook/walhook/internal/api"
	"github.com/walhook/walhook/internal/auth"
	"github.com/walhook/walhook/internal/config"
	"github.com/walhook/walhook/internal/manage"
	"github.com/walhook/walhook/internal/store"
)

// managementAPI builds the API handler and its service (which also runs the
// secret expiry), sending test events through sender, and logs what an
// operator must know about the API's configuration, at every start.
func managementAPI(cfg *config.Config, st *store.Store, sender manage.Sender, eps []*store.Endpoint, log *slog.Logger) (http.Handler, *manage.Service, error) {
	authn, err := auth.New(cfg.Auth, log)
	if err != nil {
		return nil, nil, err
	}
	switch cfg.Auth.Mode {
	case config.AuthNone:
		log.Warn("auth.mode is none: the management API is open to every local process, with access to every tenant", "listen", cfg.Listen)
	case config.AuthToken:
		if len(cfg.Auth.Tokens)+len(cfg.Auth.TenantTokens) == 0 {
			log.Warn("auth.tokens and auth.tenant_tokens are empty: the management API refuses every request (set WALHOOK_AUTH_TOKENS)")
		}
	case config.AuthForward:
		log.Info("management API authenticates through the app", "forward_url", cfg.Auth.ForwardURL, "tenant_header", cfg.Auth.ForwardTenantHeader)
	}
	if cfg.Delivery.RequireHTTPS {
		n := 0
		for _, e := range eps {
			if !strings.HasPrefix(strings.ToLower(e.URL), "https://") {
				n++
			}
		}
		if n > 0 {
			log.Warn("delivery.require_https applies to endpoints created or changed from now on: existing plain-http endpoints still receive deliveries; change their URL or delete them", "http_endpoints", n)
		}
	}
	svc := Service(cfg, st)
	svc.Sender = sender
	own, err := withDashboard(cfg, authn, svc, sender, api.Handler(api.Options{Prefix: cfg.API.Prefix, Auth: authn, Service: svc, Logger: log}), log)
	if err != nil {
		return nil, nil, err
	}
	return own, svc, nil
}
