package main

import (
	"net/http"
	"testing"

	"github.com/stampede-shop/stampede/pkg/testkit"
)

// FuzzRegisterAndLogin posts whatever body a client can send to the real
// service, on Postgres, Redis and NATS, as a registration or as a login, and
// asks for one of the answers in the routes' table every time: never a 500.
// `make test` runs the seeds below, `make fuzz` looks for more.
func FuzzRegisterAndLogin(f *testing.F) {
	env := testEnv(f)
	// A fuzzer is one client asking thousands of times a second: past the
	// login's rate limit, every answer would be a 429 and nothing else tested.
	env["FIXES"] = "resilient,-rate_limit"
	in := testkit.StartReady(f, run, env)

	const ann = `{"email":"ann@example.com","password":"correct horse battery"`
	for _, s := range []struct {
		login bool
		body  string
	}{
		{false, ann + `,"name":"Ann"}`},
		{true, ann + `}`},
		{true, `{"email":"ann@example.com","password":"wrong horse battery"}`},
		{true, `{"email":"a\u0000@b.co","password":"x"}`}, // was a 500: Postgres refuses NUL in text
		{false, `{"email":"a\u0000@b.co","password":"correct horse battery","name":"A"}`},
		{false, `{"email":"b@example.com","password":"correct horse battery","name":"B\u0007"}`},
		{true, "{\"email\":\"a\xff@b.co\",\"password\":\"x\"}"},
		{false, `{"email":`},
		{true, `[]`},
		{false, `{"email":1,"password":"x","name":"y"}`},
		{true, `{"email":"a@b.co","password":"p"} {}`},
	} {
		f.Add(s.login, s.body)
	}
	f.Fuzz(func(t *testing.T, login bool, body string) {
		path, want := "/v1/users", map[int]bool{201: true, 400: true, 409: true, 413: true}
		if login {
			path, want = "/v1/sessions", map[int]bool{200: true, 400: true, 401: true, 413: true}
		}
		r := in.Do(t, http.MethodPost, path, "", body)
		if !want[r.Status] {
			t.Fatalf("POST %s %q: %d: %.300s", path, body, r.Status, r.Raw)
		}
		if r.Status >= 400 {
			if e, _ := r.Body["error"].(map[string]any); r.ErrCode() == "" || e["message"] == "" || e["request_id"] == "" {
				t.Fatalf("POST %s %q: %d without the error shape: %.300s", path, body, r.Status, r.Raw)
			}
		}
	})
}
