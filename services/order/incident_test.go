package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stampede-shop/stampede/pkg/testkit"
)

// The incident in a test: a burst of orders for the hot SKU while the user
// service answers slowly. The naive form holds a connection and the row lock
// across that slow call, so the pool drains and an unrelated read of an
// existing order cannot get a connection. The resilient form keeps answering it.
func TestBurstWithSlowUserService(t *testing.T) {
	for _, tc := range []struct {
		fixes       string
		wantReadsOK bool
	}{
		{"naive", false},
		{"resilient", true},
	} {
		t.Run(tc.fixes, func(t *testing.T) {
			t.Parallel()
			d := startDeps(t)
			in := start(t, tc.fixes, d, func(env map[string]string) { env["DB_MAX_OPEN_CONNS"] = "3" })
			owner := token(t, 42)
			r := place(t, in, owner, "before-the-burst", `{"items":[{"product_id":5,"quantity":1}]}`)
			if r.Status != 201 {
				t.Fatalf("setup order: %d %s", r.Status, r.Raw)
			}
			id := r.Body["id"].(string)

			d.userDelay.Store(int64(600 * time.Millisecond))
			var wg sync.WaitGroup
			for i := range 9 {
				wg.Go(func() { place(t, in, token(t, int64(100+i)), fmt.Sprint("burst-", i), oneHot) })
			}
			time.Sleep(300 * time.Millisecond) // the burst holds the pool now

			// Three reads, one after another. database/sql hands a freed
			// connection to a waiter chosen at random, so one read may slip
			// through the naive form's queue; three in a row do not.
			client := &http.Client{Timeout: 1500 * time.Millisecond}
			answered := 0
			var lastErr error
			for range 3 {
				req, _ := http.NewRequest(http.MethodGet, in.API+"/v1/orders/"+id, nil)
				req.Header.Set("Authorization", "Bearer "+owner)
				resp, err := client.Do(req)
				if err == nil {
					if resp.StatusCode == 200 {
						answered++
					}
					resp.Body.Close()
				}
				lastErr = err
			}
			if ok := answered == 3; ok != tc.wantReadsOK {
				t.Errorf("reading an existing order during the burst: %d of 3 answered (last error %v), want all answered = %v", answered, lastErr, tc.wantReadsOK)
			}
			wg.Wait()
		})
	}
}

// NATS goes away while orders are placed: every order still gets its 201,
// and once NATS is back every event arrives, exactly once (fix: outbox).
func TestOutboxDeliversEveryEventAfterNATSReturns(t *testing.T) {
	t.Parallel()
	proxy := testkit.NewProxy(t, strings.TrimPrefix(testkit.NATSURL(), "nats://"), true)
	in := start(t, "resilient", startDeps(t), func(env map[string]string) { env["NATS_URL"] = "nats://" + proxy.Addr })

	proxy.SetUp(false)
	placed := map[string]bool{}
	for i := range 20 {
		r := place(t, in, token(t, int64(i+1)), fmt.Sprint("nats-down-", i), fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":1}]}`, i%5+10))
		if r.Status != 201 {
			t.Fatalf("order %d while NATS is down: %d %s", i, r.Status, r.Raw)
		}
		placed[r.Body["id"].(string)] = true
	}
	if pending := query(t, in, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`); pending != 20 {
		t.Fatalf("%d events waiting in the outbox, want 20", pending)
	}
	time.Sleep(time.Second) // the relay tries, fails, backs off
	proxy.SetUp(true)

	got, perOrder := countEvents(t, in, 20, 30*time.Second)
	if got != 20 {
		t.Fatalf("%d events after NATS returned, want 20\n%s", got, in.Logs.String())
	}
	for id := range placed {
		if perOrder[id] != 1 {
			t.Fatalf("order %s has %d events, want exactly 1", id, perOrder[id])
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for query(t, in, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the outbox was not marked sent")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Postgres goes away: an order read before is still served to its owner,
// marked stale, and still to nobody else; one never read gets a fast 503.
func TestPostgresDownServesStaleOrders(t *testing.T) {
	t.Parallel()
	proxy := testkit.NewProxy(t, "127.0.0.1:5432", true)
	in := start(t, "resilient", startDeps(t), func(env map[string]string) {
		env["DATABASE_URL"] = strings.Replace(env["DATABASE_URL"], "127.0.0.1:5432", proxy.Addr, 1)
	})
	owner := token(t, 11)
	read := place(t, in, owner, "read-before", oneHot).Body["id"].(string)
	unread := place(t, in, owner, "never-read", `{"items":[{"product_id":2,"quantity":1}]}`).Body["id"].(string)
	if r := in.Do(t, "GET", "/v1/orders/"+read, owner, ""); r.Status != 200 || r.Body["stale"] != nil {
		t.Fatalf("before the outage: %d %s", r.Status, r.Raw)
	}

	proxy.SetUp(false)
	dropFreshCopies(t, in.Env["REDIS_KEY_PREFIX"]) // as if they had expired during the outage

	r := in.Do(t, "GET", "/v1/orders/"+read, owner, "")
	if r.Status != 200 || r.Body["stale"] != true || r.Body["id"] != read {
		t.Fatalf("read before: %d %s, want 200 with \"stale\": true", r.Status, r.Raw)
	}
	if r := in.Do(t, "GET", "/v1/orders/"+read, token(t, 12), ""); r.Status != 404 {
		t.Fatalf("a stale copy must still be owner-only: %d %s", r.Status, r.Raw)
	}
	r = in.Do(t, "GET", "/v1/orders/"+unread, owner, "")
	if r.Status != 503 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("never read: %d %s, want 503 with Retry-After", r.Status, r.Raw)
	}
}

func dropFreshCopies(t *testing.T, prefix string) {
	t.Helper()
	opts, _ := goredis.ParseURL(testkit.RedisURL())
	rdb := goredis.NewClient(opts)
	defer rdb.Close()
	keys, _ := rdb.Keys(context.Background(), prefix+"order:*").Result()
	for _, k := range keys {
		if !strings.HasSuffix(k, ":last-good") {
			rdb.Del(context.Background(), k)
		}
	}
}
