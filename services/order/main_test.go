package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/pkg/auth"
	"github.com/stampede-shop/stampede/pkg/catalog"
	"github.com/stampede-shop/stampede/pkg/testkit"
)

const (
	testSecret = "test-secret-test-secret-test-secret"
	inventory  = 100 // products seeded; product 1 is the hot SKU with stock 100
)

// deps stands in for the user and search services: the two routes this
// service calls, with a user service the test can hold.
type deps struct {
	users, search *httptest.Server
	userCalls     atomic.Int64
	userStatus    atomic.Int64 // if set, the user service answers this
	userHeld      atomic.Int64 // calls waiting in holdUsers' hold now

	mu   sync.Mutex
	hold chan struct{} // while open, every user call waits on it
}

// holdUsers makes the user service stop answering, as a stuck dependency
// does, until the returned function lets every waiting call go on.
func (d *deps) holdUsers() (release func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	hold := make(chan struct{})
	d.hold = hold
	return sync.OnceFunc(func() {
		d.mu.Lock()
		d.hold = nil
		d.mu.Unlock()
		close(hold)
	})
}

func (d *deps) waitOnHold(r *http.Request) {
	d.mu.Lock()
	hold := d.hold
	d.mu.Unlock()
	if hold == nil {
		return
	}
	d.userHeld.Add(1)
	defer d.userHeld.Add(-1)
	select {
	case <-hold:
	case <-r.Context().Done():
	}
}

func startDeps(t testing.TB) *deps {
	t.Helper()
	d := &deps{}
	prices := map[int64]int64{}
	for _, p := range catalog.Generate(inventory) {
		prices[p.ID] = p.PriceCents
	}
	d.users = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.userCalls.Add(1)
		d.waitOnHold(r)
		if status := d.userStatus.Load(); status != 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(int(status))
			return
		}
		id, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/internal/v1/users/"), 10, 64)
		if id <= 0 || id > 1_000_000 {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"id":%d,"email":"u%d@example.com","name":"U","points":0}`, id, id)
	}))
	d.search = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/internal/v1/products/"), 10, 64)
		price, ok := prices[id]
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"id":%d,"price_cents":%d}`, id, price)
	}))
	t.Cleanup(func() { d.users.Close(); d.search.Close() })
	return d
}

// start seeds an inventory and runs the order service with fixes.
func start(t testing.TB, fixesValue string, d *deps, edit ...func(map[string]string)) *testkit.Instance {
	t.Helper()
	env := testkit.Env(t)
	env["JWT_SECRET"] = testSecret
	env["USER_SERVICE_URL"] = d.users.URL
	env["SEARCH_SERVICE_URL"] = d.search.URL
	env["FIXES"] = fixesValue
	for _, e := range edit {
		e(env)
	}
	var out testkit.SyncBuffer
	if err := run(context.Background(), []string{"order", "seed", strconv.Itoa(inventory)}, testkit.Getenv(env), nil, &out, &out); err != nil {
		t.Fatalf("seed: %v\n%s", err, out.String())
	}
	return testkit.StartReady(t, run, env)
}

func token(t testing.TB, userID int64) string {
	t.Helper()
	tok, _, err := auth.NewTokens(testSecret, time.Hour).Issue(userID)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// place posts an order with an idempotency key.
func place(t *testing.T, in *testkit.Instance, tok, key, body string) testkit.Response {
	t.Helper()
	return testkit.DoRequest(t, orderRequest(in, tok, key, body))
}

// orderRequest is POST /v1/orders as a client sends it; no key if key is "".
func orderRequest(in *testkit.Instance, tok, key, body string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, in.API+"/v1/orders", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	return req
}

// placeUntilAnswered is place as a well-behaved client does it
// (testkit.UntilAnswered): after a 503, a 409 request_in_progress or no
// answer it asks again with the same key, which makes asking again safe.
func placeUntilAnswered(t *testing.T, in *testkit.Instance, tok, key, body string) testkit.Response {
	t.Helper()
	return testkit.UntilAnswered(t, func() *http.Request { return orderRequest(in, tok, key, body) })
}
