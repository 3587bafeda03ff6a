package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

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
	d := startDeps(t)
	in := start(t, "resilient", d)
	for i, step := range []struct {
		fixes    string
		min, max time.Duration
	}{
		{"resilient", time.Millisecond, 3*time.Second + orders.ReleaseTimeout + orders.LeaseMargin},
		{"resilient,-timeouts", orders.ClaimLease, orders.ClaimLease},
	} {
		setFixes(t, in, step.fixes)
		tok := token(t, int64(60+i)) // a user the service has not looked up yet
		release := d.holdUsers()
		answered := make(chan error, 1)
		go func() {
			r, err := testkit.TryRequest(orderRequest(in, tok, "lease-"+step.fixes, oneHot))
			if err == nil && r.Status >= 500 && r.Status != 503 {
				err = fmt.Errorf("answered %d %s", r.Status, r.Raw)
			}
			answered <- err
		}()
		waitUntil(t, "the order to wait on the user service", 5*time.Second, func() bool { return d.userHeld.Load() > 0 })
		ms := query(t, in, `SELECT (extract(epoch FROM expires_at - created_at) * 1000)::bigint
			FROM idempotency_keys WHERE key = 'lease-`+step.fixes+`'`)
		release()
		if err := <-answered; err != nil {
			t.Fatalf("%s: the order: %v", step.fixes, err)
		}
		if lease := time.Duration(ms) * time.Millisecond; lease < step.min || lease > step.max {
			t.Errorf("%s: the order's claim holds its key %v, want %v to %v", step.fixes, lease, step.min, step.max)
		}
	}
}
