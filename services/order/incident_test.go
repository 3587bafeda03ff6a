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
// service hangs. The naive form holds a connection and the row lock across
// that call, so the pool runs dry and an unrelated read of an existing order
// cannot get a connection. The resilient form calls the user service before
// it takes a connection, and keeps answering the read.
//
// The test holds the user service until it has looked, so nothing here
// depends on timing: once every connection is in a stuck transaction (one
// waits on the user service, the others on its row lock), the naive form
// frees none while the hold lasts, and a read that gets no answer in a
// second never would.
func TestBurstWithSlowUserService(t *testing.T) {
	const pool, burst = 3, 9
	for _, tc := range []struct {
		fixes       string
		poolRunsDry bool // the burst holds every connection
	}{
		{"naive", true},
		{"resilient", false},
	} {
		t.Run(tc.fixes, func(t *testing.T) {
			t.Parallel()
			d := startDeps(t)
			in := start(t, tc.fixes, d, func(env map[string]string) { env["DB_MAX_OPEN_CONNS"] = fmt.Sprint(pool) })
			owner := token(t, 42)
			r := place(t, in, owner, "before-the-burst", `{"items":[{"product_id":5,"quantity":1}]}`)
			if r.Status != 201 {
				t.Fatalf("setup order: %d %s", r.Status, r.Raw)
			}
			id := r.Body["id"].(string)

			var wg sync.WaitGroup
			defer wg.Wait()
			release := d.holdUsers()
			defer release() // before wg.Wait: deferred calls run last in, first out
			for i := range burst {
				wg.Go(func() {
					if _, err := testkit.TryRequest(orderRequest(in, token(t, int64(100+i)), fmt.Sprint("burst-", i), oneHot)); err != nil {
						t.Errorf("burst order %d got no answer: %v", i, err)
					}
				})
			}

			waitUntil(t, "the burst reaches the user service", 10*time.Second, func() bool { return d.userHeld.Load() > 0 })
			if tc.poolRunsDry {
				// Every connection of the pool is in a transaction that cannot
				// end: one waits on the user service, the others on its row
				// lock. (Connections merely in use could be a short idempotency
				// claim about to hand its connection over.)
				waitUntil(t, "the burst holds the whole pool", 10*time.Second, func() bool {
					return query(t, in, `SELECT count(*) FROM pg_stat_activity
						WHERE datname = current_database() AND pid <> pg_backend_pid()
						AND (state = 'idle in transaction' OR wait_event_type = 'Lock')`) == pool
				})
			}

			req, _ := http.NewRequest(http.MethodGet, in.API+"/v1/orders/"+id, nil)
			req.Header.Set("Authorization", "Bearer "+owner)
			resp, err := (&http.Client{Timeout: time.Second}).Do(req)
			answered := err == nil && resp.StatusCode == 200
			if err == nil {
				resp.Body.Close()
			}
			if answered == tc.poolRunsDry {
				t.Errorf("reading an existing order during the burst: answered %v (err %v), want %v", answered, err, !tc.poolRunsDry)
			}
		})
	}
}

// waitUntil polls cond, every 50 ms (a poll may open a database
// connection), for at most within; it is how a test waits for a state it has
// caused, instead of sleeping and hoping.
func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", within, what)
		}
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
	// Still ready, degraded: taken out of the load balancer for NATS, every
	// replica would go at once (fix: probes).
	if r := in.Do(t, "GET", "/readyz", "", ""); r.Status != 200 || r.Body["status"] != "degraded" {
		t.Fatalf("readyz while NATS is down: %d %s, want 200 degraded", r.Status, r.Raw)
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
	waitUntil(t, "the outbox to be marked sent", 5*time.Second, func() bool {
		return query(t, in, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`) == 0
	})
}

// Postgres goes away: an order read before is still served to its owner,
// marked stale, and still to nobody else; so is one placed and never read
// (its copy was kept as it was placed); one the cache does not hold gets a
// fast 503.
func TestPostgresDownServesStaleOrders(t *testing.T) {
	t.Parallel()
	proxy := testkit.NewProxy(t, "127.0.0.1:5432", true)
	in := start(t, "resilient", startDeps(t), func(env map[string]string) {
		env["DATABASE_URL"] = strings.Replace(env["DATABASE_URL"], "127.0.0.1:5432", proxy.Addr, 1)
	})
	owner := token(t, 11)
	other := `{"items":[{"product_id":2,"quantity":1}]}`
	read := place(t, in, owner, "read-before", oneHot).Body["id"].(string)
	unread := place(t, in, owner, "never-read", other).Body["id"].(string)
	lost := place(t, in, owner, "lost", other).Body["id"].(string)
	if r := in.Do(t, "GET", "/v1/orders/"+read, owner, ""); r.Status != 200 || r.Body["stale"] != nil {
		t.Fatalf("before the outage: %d %s", r.Status, r.Raw)
	}

	proxy.SetUp(false)
	prefix := in.Env["REDIS_KEY_PREFIX"]
	dropCopies(t, prefix+"order:*", false)        // as if they had expired during the outage
	dropCopies(t, prefix+"order:"+lost+"*", true) // as if Redis had lost them

	r := in.Do(t, "GET", "/v1/orders/"+read, owner, "")
	if r.Status != 200 || r.Body["stale"] != true || r.Body["id"] != read {
		t.Fatalf("read before: %d %s, want 200 with \"stale\": true", r.Status, r.Raw)
	}
	if r := in.Do(t, "GET", "/v1/orders/"+read, token(t, 12), ""); r.Status != 404 {
		t.Fatalf("a stale copy must still be owner-only: %d %s", r.Status, r.Raw)
	}
	r = in.Do(t, "GET", "/v1/orders/"+unread, owner, "")
	if r.Status != 200 || r.Body["stale"] != true || r.Body["id"] != unread {
		t.Fatalf("placed, never read: %d %s, want 200 with \"stale\": true", r.Status, r.Raw)
	}
	r = in.Do(t, "GET", "/v1/orders/"+lost, owner, "")
	if r.Status != 503 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("not in the cache: %d %s, want 503 with Retry-After", r.Status, r.Raw)
	}
}

// dropCopies deletes the cache's keys that match pattern: the fresh copies
// only, or the last good ones too.
func dropCopies(t *testing.T, pattern string, lastGoodToo bool) {
	t.Helper()
	opts, _ := goredis.ParseURL(testkit.RedisURL())
	rdb := goredis.NewClient(opts)
	defer rdb.Close()
	keys, _ := rdb.Keys(context.Background(), pattern).Result()
	for _, k := range keys {
		if lastGoodToo || !strings.HasSuffix(k, ":last-good") {
			rdb.Del(context.Background(), k)
		}
	}
}
