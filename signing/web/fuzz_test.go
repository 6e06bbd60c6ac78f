package web

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzReadJSON checks that any body and content type is either taken or
// refused with a bodyError of a client-error status; nothing panics.
func FuzzReadJSON(f *testing.F) {
	f.Add("application/json", `{"code": "123456", "consent": true}`)
	f.Add("application/json; charset=utf-8", `{"reason": "non", "name": "Luc", "email": "luc@partner.example"}`)
	f.Add("application/json", `{"code": 1}`)
	f.Add("application/json", `{} {}`)
	f.Add("application/json", `{"consent": true}]`)
	f.Add("text/plain", `{}`)
	f.Add("", ``)
	f.Add("application/x-www-form-urlencoded", `code=1`)
	f.Fuzz(func(t *testing.T, contentType, body string) {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/sign/t/sign", strings.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		var req actRequest
		ok, err := readJSON(httptest.NewRecorder(), r, &req)
		var be *bodyError
		switch {
		case err == nil:
			if ok == (body == "") {
				t.Fatalf("readJSON(%q) = %v without error", body, ok)
			}
		case !errors.As(err, &be) || be.status < 400 || be.status > 499 || be.code == "" || be.msg == "":
			t.Fatalf("readJSON(%q, %q): %#v", contentType, body, err)
		}
	})
}
