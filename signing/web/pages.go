package web

import "net/http"

// Placeholder until the pages helper lands.
type pages struct{}

func newPages() (*pages, error) { return &pages{}, nil }

func (s *Server) pageRoutes(mux *http.ServeMux) {}
