package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stampede-shop/stampede/pkg/testkit"
	"github.com/stampede-shop/stampede/services/order/orders"
)

func setFixes(t *testing.T, in *testkit.Instance, value string) {
	t.Helper()
	r := testkit.Do(t, "PUT", in.Admin+"/admin/fixes", "admin-test-token", strings.NewReader(`{"fixes":"`+value+`"}`))
	if r.Status != 200 {
		t.Fatalf("PUT /admin/fixes %s: %d %s", value, r.Status, r.Raw)
	}
}

func metric(t *testing.T, in *testkit.Instance, series string) float64 {
	t.Helper()
	r := testkit.Do(t, "GET", in.Admin+"/metrics", "", nil)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(r.Raw)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// hot_row and outbox act per request: flipped through the admin API on a
// running instance, the next order takes the other path.
func TestHotRowAndOutboxSwitchAtRunTime(t *testing.T) {
	t.Parallel()
	in := start(t, "resilient", startDeps(t))
	tok := token(t, 5)
	query(t, in, `UPDATE inventory SET stock = 0 WHERE product_id = 20 RETURNING 0`)
	soldOut := `stock_gate_decisions_total{result="sold_out"}`

	n := 0
	order := func(product int) int {
		n++
		return place(t, in, tok, fmt.Sprint("sw-", n), fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":1}]}`, product)).Status
	}
	outbox := func() int64 { return query(t, in, `SELECT count(*) FROM outbox`) }

	for _, step := range []struct {
		fixes          string
		gateRefuses    bool // a sold-out request is refused by the Redis gate
		writesToOutbox bool
	}{
		{"resilient", true, true},
		{"resilient,-hot_row", false, true},
		{"resilient,-outbox", true, false},
		{"resilient", true, true},
	} {
		setFixes(t, in, step.fixes)
		before := metric(t, in, soldOut)
		if code := order(20); code != 409 {
			t.Fatalf("%s: sold-out order answered %d", step.fixes, code)
		}
		if refused := metric(t, in, soldOut) > before; refused != step.gateRefuses {
			t.Errorf("%s: refused by the gate = %v, want %v", step.fixes, refused, step.gateRefuses)
		}
		rows := outbox()
		if code := order(30); code != 201 {
			t.Fatalf("%s: order answered %d", step.fixes, code)
		}
		if wrote := outbox() > rows; wrote != step.writesToOutbox {
			t.Errorf("%s: outbox row written = %v, want %v", step.fixes, wrote, step.writesToOutbox)
		}
	}
}

// timeouts bounds an order's claim on its idempotency key: with the
// request's deadline, the claim lasts what is left of it, the release after
// it and a margin; without one, 30 s. So a key its order failed to release
// (the database out of reach) answers a retry with 409 request_in_progress
// for seconds, not half a minute. Read while each order waits on a stuck
// user service, between its claim and its answer.
func TestTimeoutsBoundAnOrdersClaimOnItsKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := startDeps(t)
	in := start(t, "resilient", d)
	conn, err := pgx.Connect(ctx, in.Env["DATABASE_URL"]) // open before the order: it has no time to wait for one
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	user := int64(60)
	// claimWhileHeld places an order while the user service is stuck and
	// reads its claim's lease before the order answers; 0 if the order
	// answered first, its key released (with the fix, its call to the user
	// service gives up after 500 ms: a test starved that long misses it).
	claimWhileHeld := func() time.Duration {
		user++ // a user the service has not looked up yet
		tok, key := token(t, user), fmt.Sprint("lease-", user)
		release := d.holdUsers()
		answered := make(chan error, 1)
		go func() {
			r, err := testkit.TryRequest(orderRequest(in, tok, key, oneHot))
			if err == nil && r.Status >= 500 && r.Status != 503 {
				err = fmt.Errorf("answered %d %s", r.Status, r.Raw)
			}
			answered <- err
		}()
		var ms int64
		waitUntil(t, "the order's claim, or its answer", 10*time.Second, func() bool {
			err := conn.QueryRow(ctx, `SELECT (extract(epoch FROM expires_at - created_at) * 1000)::bigint
				FROM idempotency_keys WHERE key = $1`, key).Scan(&ms)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				t.Fatal(err)
			}
			return ms != 0 || len(answered) > 0
		})
		release()
		if err := <-answered; err != nil {
			t.Fatalf("the order: %v", err)
		}
		return time.Duration(ms) * time.Millisecond
	}
	for _, step := range []struct {
		fixes    string
		min, max time.Duration
	}{
		{"resilient", time.Millisecond, 3*time.Second + orders.ReleaseTimeout + orders.LeaseMargin},
		{"resilient,-timeouts", orders.ClaimLease, orders.ClaimLease},
	} {
		setFixes(t, in, step.fixes)
		lease := claimWhileHeld()
		for try := 1; lease == 0 && try < 3; try++ {
			lease = claimWhileHeld()
		}
		switch {
		case lease == 0:
			t.Fatalf("%s: three orders answered before their claims could be read", step.fixes)
		case lease < step.min || lease > step.max:
			t.Errorf("%s: the order's claim holds its key %v, want %v to %v", step.fixes, lease, step.min, step.max)
		}
	}
}
