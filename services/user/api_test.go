package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/pkg/auth"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

func TestRegisterLoginAndProfile(t *testing.T) {
	t.Parallel()
	in := start(t)

	r := in.Do(t, "POST", "/v1/users", "", `{"email":"  Ann@Example.com ","password":"correct horse battery","name":" Ann "}`)
	if r.Status != 201 || r.Body["email"] != "ann@example.com" || r.Body["name"] != "Ann" || r.Body["points"] != 0.0 {
		t.Fatalf("register: %d %s", r.Status, r.Raw)
	}
	if strings.Contains(r.Raw, "password") {
		t.Fatalf("the hash must never leave the service: %s", r.Raw)
	}
	id := r.Body["id"].(float64)

	r = in.Do(t, "POST", "/v1/users", "", `{"email":"ann@EXAMPLE.com","password":"another password","name":"Ann 2"}`)
	if r.Status != 409 || r.ErrCode() != "email_taken" {
		t.Fatalf("duplicate email: %d %s", r.Status, r.Raw)
	}

	r = in.Do(t, "POST", "/v1/sessions", "", `{"email":"ANN@example.com","password":"correct horse battery"}`)
	if r.Status != 200 || r.Body["token"] == nil || r.Body["expires_at"] == nil {
		t.Fatalf("login: %d %s", r.Status, r.Raw)
	}
	token := r.Body["token"].(string)

	r = in.Do(t, "GET", "/v1/users/me", token, "")
	if r.Status != 200 || r.Body["id"] != id || r.Body["email"] != "ann@example.com" {
		t.Fatalf("me: %d %s", r.Status, r.Raw)
	}
	r = in.Do(t, "GET", fmt.Sprintf("/internal/v1/users/%d", int64(id)), "", "")
	if r.Status != 200 || r.Body["name"] != "Ann" {
		t.Fatalf("internal: %d %s", r.Status, r.Raw)
	}
}

func TestWrongPasswordAndUnknownEmailAnswerAlike(t *testing.T) {
	t.Parallel()
	in := start(t)
	in.register(t, "bob@example.com")
	wrong := in.Do(t, "POST", "/v1/sessions", "", `{"email":"bob@example.com","password":"not the password"}`)
	unknown := in.Do(t, "POST", "/v1/sessions", "", `{"email":"nobody@example.com","password":"not the password"}`)
	for name, r := range map[string]testkit.Response{"wrong password": wrong, "unknown email": unknown} {
		if r.Status != 401 || r.ErrCode() != "bad_credentials" {
			t.Errorf("%s: %d %s", name, r.Status, r.Raw)
		}
	}
	strip := func(r testkit.Response) string { return strings.Split(r.Raw, `"request_id"`)[0] }
	if strip(wrong) != strip(unknown) {
		t.Errorf("the answers differ:\n%s\n%s", wrong.Raw, unknown.Raw)
	}
}

func TestTokensThatMustBeRefused(t *testing.T) {
	t.Parallel()
	in := start(t)
	id, token := in.register(t, "cy@example.com")

	expired, _, _ := auth.NewTokens(testSecret, time.Minute).WithClock(func() time.Time { return time.Now().Add(-time.Hour) }).Issue(id)
	forged, _, _ := auth.NewTokens("some-other-secret-some-other-secret", time.Hour).Issue(id)
	tampered := token[:len(token)-4] + "AAAA"
	for name, tok := range map[string]string{"expired": expired, "forged": forged, "tampered": tampered, "none": ""} {
		r := in.Do(t, "GET", "/v1/users/me", tok, "")
		if r.Status != 401 || r.ErrCode() != "unauthorized" {
			t.Errorf("%s token: %d %s", name, r.Status, r.Raw)
		}
	}
	r := testkit.Do(t, "GET", in.API+"/v1/users/me", "", nil)
	if r.Status != 401 {
		t.Errorf("no Authorization header: %d", r.Status)
	}
}

func TestBadInputIsAClearClientError(t *testing.T) {
	t.Parallel()
	in := start(t)
	huge := `{"email":"a@b.co","password":"correct horse","name":"` + strings.Repeat("x", 100<<10) + `"}`
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"malformed JSON", "POST", "/v1/users", `{"email":`, 400, "invalid_json"},
		{"empty body", "POST", "/v1/users", ``, 400, "invalid_json"},
		{"wrong type", "POST", "/v1/users", `{"email":1,"password":"x","name":"y"}`, 400, "invalid_json"},
		{"unknown field", "POST", "/v1/users", `{"email":"a@b.co","password":"correct horse","name":"A","admin":true}`, 400, "invalid_json"},
		{"missing fields", "POST", "/v1/users", `{"email":"a@b.co"}`, 400, "invalid"},
		{"huge body", "POST", "/v1/users", huge, 413, "body_too_large"},
		{"login missing password", "POST", "/v1/sessions", `{"email":"a@b.co"}`, 400, "invalid"},
		{"login not JSON", "POST", "/v1/sessions", `email=a`, 400, "invalid_json"},
		// No account can have it (registration refuses it), and Postgres
		// would refuse the NUL byte: the answer any unknown email gets.
		{"login email with a NUL byte", "POST", "/v1/sessions", `{"email":"a\u0000@b.co","password":"x"}`, 401, "bad_credentials"},
		{"internal id not a number", "GET", "/internal/v1/users/abc", ``, 400, "invalid"},
		{"internal id zero", "GET", "/internal/v1/users/0", ``, 400, "invalid"},
		{"internal unknown id", "GET", "/internal/v1/users/987654", ``, 404, "not_found"},
		{"unknown route", "GET", "/v1/nothing", ``, 404, "not_found"},
		{"wrong method", "DELETE", "/v1/users", ``, 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := in.Do(t, tt.method, tt.path, "", tt.body)
			if r.Status != tt.status || r.ErrCode() != tt.code {
				t.Fatalf("got %d %q, want %d %q: %.300s", r.Status, r.ErrCode(), tt.status, tt.code, r.Raw)
			}
			if e := r.Body["error"].(map[string]any); e["request_id"] == "" || e["message"] == "" {
				t.Fatalf("error shape incomplete: %s", r.Raw)
			}
		})
	}
}

func TestLoginThrottleFollowsTheSwitch(t *testing.T) {
	t.Parallel()
	// Shedding off: thirty bcrypt comparisons at once on a small machine
	// are exactly what it would shed, and this test is about the limiter.
	env := testEnv(t)
	env["FIXES"] = "resilient,-shedding"
	in := &instance{testkit.StartReady(t, run, env)}
	login := `{"email":"x@example.com","password":"whatever it is"}`
	// A burst of 30 logins at once. Each login costs a bcrypt comparison, so
	// sent one after another they would take long enough for the bucket to
	// refill; sent together they all arrive within a few milliseconds.
	const size = 30
	var throttled testkit.Response // one of the 429s, to look at
	burst := func() (map[int]int, time.Duration) {
		var mu sync.Mutex
		codes := map[int]int{}
		start := time.Now()
		var wg sync.WaitGroup
		for range size {
			wg.Go(func() {
				// A 503 is the pool's (pool_guard) on a busy machine, not the
				// limiter's: come back shortly, as a client would.
				r := testkit.UntilAnswered(t, func() *http.Request {
					req, _ := http.NewRequest(http.MethodPost, in.API+"/v1/sessions", strings.NewReader(login))
					return req
				})
				mu.Lock()
				codes[r.Status]++
				if r.Status == http.StatusTooManyRequests {
					throttled = r
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		return codes, time.Since(start)
	}
	// The bucket holds 10 and refills at 10/s; the exact per-window count is
	// tested on a fake clock in pkg/resilience.
	codes, took := burst()
	if most := 10 + int(took.Seconds()*10) + 1; codes[401] < 10 || codes[401] > most || codes[429] < size-most {
		t.Fatalf("rate_limit on: %v in %v, want 10..%d answered and the rest throttled", codes, took, most)
	}
	r := throttled
	if r.Status != 429 || r.ErrCode() != "rate_limited" || r.Header.Get("Retry-After") == "" || r.Header.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("throttled answer: %d %v %s", r.Status, r.Header, r.Raw)
	}

	// Flip the fix off at run time through the admin API: no restart.
	r = testkit.Do(t, "PUT", in.Admin+"/admin/fixes", "admin-test-token", strings.NewReader(`{"fixes":"resilient,-shedding,-rate_limit"}`))
	if r.Status != 200 {
		t.Fatalf("admin PUT: %d %s", r.Status, r.Raw)
	}
	if codes, _ := burst(); codes[429] != 0 || codes[401] != size {
		t.Fatalf("rate_limit off: %v, want nothing throttled", codes)
	}
	if !strings.Contains(in.Logs.String(), `"switched_off":["rate_limit"]`) {
		t.Fatal("the switch must be logged")
	}
}

func TestProfileCacheIsInvalidatedByPoints(t *testing.T) {
	t.Parallel()
	in := start(t)
	rdb, _ := testkit.Redis(t)
	id, token := in.register(t, "dee@example.com")
	key := fmt.Sprintf("%sprofile:%d", in.Env["REDIS_KEY_PREFIX"], id)

	if r := in.Do(t, "GET", "/v1/users/me", token, ""); r.Status != 200 {
		t.Fatal(r.Raw)
	}
	if n, _ := rdb.Exists(context.Background(), key).Result(); n != 1 {
		t.Fatalf("profile not cached under %s", key)
	}
	publishOrder(t, in, "ev-cache", id, 2500)
	waitPoints(t, in, id, 25)
	// The read after the event saw the new balance, so the stale entry was dropped.
	if r := in.Do(t, "GET", "/v1/users/me", token, ""); r.Body["points"] != 25.0 {
		t.Fatalf("me after points: %s", r.Raw)
	}
}

func TestMetricsOnAdminPort(t *testing.T) {
	t.Parallel()
	in := start(t)
	in.register(t, "eve@example.com")
	r := testkit.Do(t, "GET", in.Admin+"/metrics", "", nil)
	for _, series := range []string{
		`http_requests_total{code="201",method="POST",route="/v1/users"} 1`,
		`http_request_duration_seconds_bucket{method="POST",outcome="ok",route="/v1/users"`,
		`go_sched_latencies_seconds_bucket`,
		`http_requests_in_flight{route="/v1/users"}`,
		`go_sql_open_connections{db_name="user"}`,
		`go_sql_in_use_connections{db_name="user"}`,
		`go_sql_wait_count_total{db_name="user"}`,
		`go_sql_wait_duration_seconds_total{db_name="user"}`,
		`redis_pool_connections`,
		`go_goroutines`,
	} {
		if !strings.Contains(r.Raw, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	// Housekeeping is wired (the sweeper itself is tested in pkg/db): the
	// records of handled events are swept once the stream has forgotten them.
	if got := in.SweptTables(t); !slices.Equal(got, []string{"processed_events"}) {
		t.Errorf("swept tables %v, want [processed_events]", got)
	}
	if r := testkit.Do(t, "GET", in.API+"/metrics", "", nil); r.Status != http.StatusNotFound {
		t.Errorf("/metrics must not be on the public port: %d", r.Status)
	}
}
