package api

import (
	_ "embed"
	"encoding/json"
	"net/http"
)

// openAPI is the checked-in OpenAPI document of this API.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the checked-in document.
func OpenAPI() []byte { return openAPI }

// openAPIFor is the document with its server set to the configured base.
func openAPIFor(base string) []byte {
	var doc map[string]any
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		return openAPI // TestOpenAPIDescribesEveryRoute keeps it valid
	}
	doc["servers"] = []map[string]string{{"url": base}}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return openAPI
	}
	return out
}

func (s *server) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(s.openapi)
}
