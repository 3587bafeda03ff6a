package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/loadtest/scenario"
)

// The open model: arrivals keep their schedule however slow the answers are.
// Every request here takes ten times longer than the whole schedule's gap,
// and still the generator sends exactly rate × length of them.
func TestArrivalsDoNotWaitForAnswers(t *testing.T) {
	var g Generator
	var fired atomic.Int64
	g.Run(context.Background(), time.Now(), time.Second, func(time.Duration) float64 { return 200 },
		func(ctx context.Context, due time.Duration) {
			fired.Add(1)
			time.Sleep(100 * time.Millisecond) // a stalled server
		})
	if n := fired.Load(); n != 200 || g.Sent() != 200 || g.Dropped() != 0 {
		t.Fatalf("fired %d, sent %d, dropped %d; want 200 arrivals in one second at 200/s", n, g.Sent(), g.Dropped())
	}
}

func TestInFlightBoundDropsAndCounts(t *testing.T) {
	g := Generator{MaxInFlight: 10}
	release := make(chan struct{})
	go func() { time.Sleep(600 * time.Millisecond); close(release) }()
	g.Run(context.Background(), time.Now(), 500*time.Millisecond, func(time.Duration) float64 { return 100 },
		func(context.Context, time.Duration) { <-release })
	if g.Sent() != 10 || g.Dropped() != 40 {
		t.Fatalf("sent %d, dropped %d; want 10 sent and the other 40 dropped and counted", g.Sent(), g.Dropped())
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		status int
		body   string
		class  Class
		code   string
		stale  bool
	}{
		{200, `{"id":"x"}`, OK, "", false},
		{200, `{"id":"x","stale":true}`, OK, "", true},
		{201, `{}`, OK, "", false},
		{409, `{"error":{"code":"sold_out"}}`, SoldOut, "sold_out", false},
		{409, `{"error":{"code":"request_in_progress"}}`, InProgress, "request_in_progress", false},
		{409, `{"error":{"code":"something_else"}}`, ClientError, "something_else", false},
		{429, `{"error":{"code":"rate_limited"}}`, Limited, "rate_limited", false},
		{503, `{"error":{"code":"overloaded"}}`, Shed, "overloaded", false},
		{503, `{"error":{"code":"pool_timeout"}}`, Unavailable, "pool_timeout", false},
		{503, `{"error":{"code":"timeout"}}`, Unavailable, "timeout", false},
		{503, `service unavailable`, Unavailable, "", false},
		{500, `{"error":{"code":"internal"}}`, ServerError, "internal", false},
		{502, `bad gateway`, ServerError, "", false},
		{404, `{"error":{"code":"not_found"}}`, ClientError, "not_found", false},
	}
	for _, tt := range tests {
		c, code, stale := classify(tt.status, []byte(tt.body))
		if c != tt.class || code != tt.code || stale != tt.stale {
			t.Errorf("%d %s: %s %q stale=%v, want %s %q stale=%v", tt.status, tt.body, c, code, stale, tt.class, tt.code, tt.stale)
		}
	}
}

func TestRecorderWindows(t *testing.T) {
	var r Recorder
	add := func(sec float64, k scenario.Kind, c Class, ms int) {
		r.Add(Result{Due: time.Duration(sec * float64(time.Second)), Kind: k, Class: c, Latency: time.Duration(ms) * time.Millisecond})
	}
	for i := range 100 {
		add(0.5, scenario.Search, OK, i+1) // 1..100 ms
	}
	add(1.2, scenario.OrderHot, SoldOut, 5)
	add(1.3, scenario.OrderHot, Shed, 2)
	add(1.4, scenario.OrderOther, Timeout, 5000)
	add(1.5, scenario.ReadOrder, Refused, 1)
	add(1.6, scenario.ReadOrder, Refused, 1)

	first := r.Window(0, time.Second)
	if first.Offered != 100 || first.Good() != 100 || first.GoodP(0.99) != 99 || first.GoodP(0.5) != 50 {
		t.Fatalf("second 0: offered %d good %d p50 %v p99 %v", first.Offered, first.Good(), first.GoodP(0.5), first.GoodP(0.99))
	}
	second := r.Window(time.Second, 2*time.Second)
	if second.Orders != 5 || second.OrdersOK != 1 || second.OrdersUp != 2 || !second.OrderAPIDown() {
		t.Fatalf("second 1: orders %d ok %d up %d down %v", second.Orders, second.OrdersOK, second.OrdersUp, second.OrderAPIDown())
	}
	if second.RefusalP(0.99) != 2 || second.Share(Timeout) != 0.2 {
		t.Fatalf("second 1: refusal p99 %v, timeout share %v", second.RefusalP(0.99), second.Share(Timeout))
	}
	if all := r.Window(0, 2*time.Second); all.Goodput() != 50.5 || all.OrderHealth() != 0.2 {
		t.Fatalf("goodput %v, want 101 good answers over 2 s", all.Goodput())
	}
	// By kind: what was asked, and how much of it was answered well.
	add(2.5, scenario.ReadOrder, OK, 3)
	if w := r.Window(time.Second, 3*time.Second); w.ByKind[scenario.ReadOrder] != 3 || w.GoodByKind[scenario.ReadOrder] != 1 ||
		w.ByKind[scenario.OrderHot] != 2 || w.GoodByKind[scenario.OrderHot] != 1 || first.GoodByKind[scenario.Search] != 100 {
		t.Fatalf("by kind: offered %v, good %v; second 0 good %v", w.ByKind, w.GoodByKind, first.GoodByKind)
	}
	// The unavailable answers, by the code they carried; other classes'
	// codes are not counted.
	r.Add(Result{Due: 5200 * time.Millisecond, Kind: scenario.OrderHot, Class: Unavailable, Code: "timeout"})
	r.Add(Result{Due: 5300 * time.Millisecond, Kind: scenario.OrderHot, Class: Unavailable, Code: "timeout"})
	r.Add(Result{Due: 6100 * time.Millisecond, Kind: scenario.OrderHot, Class: Unavailable, Code: "pool_timeout"})
	r.Add(Result{Due: 6200 * time.Millisecond, Kind: scenario.OrderHot, Class: Shed, Code: "overloaded"})
	if u := r.Window(5*time.Second, 7*time.Second).Unavailable; len(u) != 2 || u["timeout"] != 2 || u["pool_timeout"] != 1 {
		t.Fatalf("unavailable by code over seconds 5-6: %v", u)
	}
	if u := r.Window(6*time.Second, 7*time.Second).Unavailable; len(u) != 1 || u["pool_timeout"] != 1 {
		t.Fatalf("unavailable by code in second 6: %v", u)
	}
}

func TestShoppersRetryLikePeople(t *testing.T) {
	var calls atomic.Int64
	srv := newServer(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if n == 1 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"overloaded"}}`))
			return
		}
		if r.Header.Get("Idempotency-Key") == "" {
			t.Error("retry without the idempotency key")
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"order-1"}`))
	})
	defer srv.Close()
	shop := &Shop{Targets: Targets{Order: srv.URL}, Client: NewClient(), Timeout: time.Second, Retries: 2, Products: 500,
		Shoppers: []*Shopper{{ID: 1, Token: "t", IP: "10.0.0.1"}}}
	var got []Result
	shop.Send(context.Background(), scenario.OrderHot, time.Now(), 0, func(r Result) { got = append(got, r) })
	if len(got) != 2 || got[0].Class != Shed || got[1].Class != OK || !got[1].Retry || len(shop.Acknowledged()) != 1 {
		t.Fatalf("attempts %+v, acknowledged %v; want a shed, then a retry that placed the order", got, shop.Acknowledged())
	}
}

func newServer(h http.HandlerFunc) *httptest.Server { return httptest.NewServer(h) }

// A right answer after LateAfter is late: not goodput, not retried (the
// shopper got an answer), and the order it placed is still acknowledged.
func TestALateAnswerIsNotGoodput(t *testing.T) {
	var calls atomic.Int64
	srv := newServer(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		time.Sleep(LateAfter + 100*time.Millisecond)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"order-1"}`))
	})
	defer srv.Close()
	shop := &Shop{Targets: Targets{Order: srv.URL}, Client: NewClient(), Timeout: 3 * time.Second, Retries: 2, Products: 500,
		Shoppers: []*Shopper{{ID: 1, Token: "t", IP: "10.0.0.1"}}}
	var got []Result
	shop.Send(context.Background(), scenario.OrderHot, time.Now(), 0, func(r Result) { got = append(got, r) })
	if len(got) != 1 || got[0].Class != Late || got[0].Class.Good() || calls.Load() != 1 {
		t.Fatalf("attempts %+v after %d calls; want one late answer, not retried", got, calls.Load())
	}
	if len(shop.Acknowledged()) != 1 {
		t.Fatal("a late 201 still placed the order: the invariants must look for it")
	}
}

// A request sent after it was due carries its lag: the shoppers' own delay,
// counted in its latency (the open model) and kept apart so the report can
// time refusals from sending too.
func TestARequestSentLateCarriesItsLag(t *testing.T) {
	srv := newServer(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":{"code":"overloaded"}}`))
	})
	defer srv.Close()
	shop := &Shop{Targets: Targets{Search: srv.URL}, Client: NewClient(), Timeout: time.Second, Products: 500,
		Shoppers: []*Shopper{{ID: 1, Token: "t", IP: "10.0.0.1"}}}
	const late = 300 * time.Millisecond
	var got []Result
	shop.Send(context.Background(), scenario.Search, time.Now().Add(-late), 0, func(r Result) { got = append(got, r) })
	if len(got) != 1 || got[0].Class != Shed {
		t.Fatalf("attempts %+v, want one shed", got)
	}
	if r := got[0]; r.Lag < late || r.Latency < r.Lag {
		t.Fatalf("sent %v after it was due, answered %v after: want a lag of at least %v, within the latency", r.Lag, r.Latency, late)
	}

	var rec Recorder
	rec.Add(Result{Due: 100 * time.Millisecond, Class: Shed, Latency: 30 * time.Millisecond, Lag: 20 * time.Millisecond})
	rec.Add(Result{Due: 200 * time.Millisecond, Class: Limited, Latency: 12 * time.Millisecond})
	rec.Add(Result{Due: 300 * time.Millisecond, Class: OK, Latency: 50 * time.Millisecond, Lag: 40 * time.Millisecond})
	w := rec.Window(0, time.Second)
	if w.RefusalP(0.99) != 30 || w.RefusalSentP(0.99) != 12 || w.LagP(0.99) != 40 {
		t.Fatalf("refusals p99 %v from due, %v from sending (want 30, 12); lag p99 %v (want 40, every request's)",
			w.RefusalP(0.99), w.RefusalSentP(0.99), w.LagP(0.99))
	}
}

// Setting up, a shopper takes "later" for an answer: 429, 503 and the 409
// that says the first attempt still holds the idempotency key, after
// Retry-After, with the same key. On a slow machine a set-up order once
// got that 409 and the whole run stopped.
func TestSetUpWaitsOutAKeyInProgress(t *testing.T) {
	var keys []string
	var mu sync.Mutex
	srv := newServer(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		n := len(keys)
		mu.Unlock()
		switch n {
		case 1:
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"pool_timeout"}}`))
		case 2:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"error":{"code":"request_in_progress"}}`))
		default:
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id":"order-1"}`))
		}
	})
	defer srv.Close()
	shop := &Shop{Client: NewClient()}
	w := &Shopper{ID: 1, Token: "t", IP: "10.0.0.1"}
	var created struct{ ID string }
	start := time.Now()
	err := shop.call(context.Background(), w, http.MethodPost, srv.URL+"/v1/orders", map[string]any{}, http.StatusCreated, &created)
	if err != nil || created.ID != "order-1" {
		t.Fatalf("err %v, order %q; want the order placed on the third attempt", err, created.ID)
	}
	if len(keys) != 3 || keys[0] == "" || keys[1] != keys[0] || keys[2] != keys[0] {
		t.Fatalf("idempotency keys %q; want one key, three times", keys)
	}
	if waited := time.Since(start); waited < time.Second {
		t.Errorf("asked again after %v; Retry-After said 1 s", waited)
	}

	// A conflict that is not "later" is an answer: no retry.
	var attempts atomic.Int64
	soldOut := newServer(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		w.WriteHeader(http.StatusConflict)
		_, _ = w.Write([]byte(`{"error":{"code":"sold_out"}}`))
	})
	defer soldOut.Close()
	if err := shop.call(context.Background(), w, http.MethodPost, soldOut.URL+"/v1/orders", map[string]any{}, http.StatusCreated, nil); err == nil || attempts.Load() != 1 {
		t.Fatalf("err %v after %d attempts; want the sold_out answer as an error, at once", err, attempts.Load())
	}
}
