package web

import "net/http"

// Placeholder until the security helper lands: no limits yet.
type guards struct{}

func newGuards() *guards { return &guards{} }

func (s *Server) guard(h http.HandlerFunc) http.Handler { return h }

func (s *Server) headers(h http.Handler) http.Handler { return h }

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }
