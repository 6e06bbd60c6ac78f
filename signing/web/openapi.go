package web

import (
	_ "embed"
	"net/http"
)

// openAPIDocument describes the JSON API (OpenAPI 3.1); a test checks it
// against the routes and the handlers' answers.
//
//go:embed openapi.json
var openAPIDocument []byte

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write(openAPIDocument)
}
