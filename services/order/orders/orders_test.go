package orders_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/services/order/orders"
)

// request reads a body as POST /v1/orders would.
func request(t *testing.T, body string) orders.Request {
	t.Helper()
	var r orders.Request
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// A request names what is wrong with it field by field, and a good one
// nothing.
func TestRequestValid(t *testing.T) {
	var lines []string
	for id := 1; id <= orders.MaxItems+1; id++ {
		lines = append(lines, fmt.Sprintf(`{"product_id":%d,"quantity":1}`, id))
	}
	many := `{"items":[` + strings.Join(lines, ",") + `]}`
	for _, tc := range []struct {
		name, body string
		want       []string // the fields with a problem
	}{
		{"good", `{"items":[{"product_id":1,"quantity":1},{"product_id":7,"quantity":10}]}`, nil},
		{"no items", `{"items":[]}`, []string{"items"}},
		{"too many items", many, []string{"items"}},
		{"no product", `{"items":[{"quantity":1}]}`, []string{"items[0].product_id"}},
		{"a product twice", `{"items":[{"product_id":3,"quantity":1},{"product_id":3,"quantity":2}]}`, []string{"items[1].product_id"}},
		{"none of it", `{"items":[{"product_id":3,"quantity":0}]}`, []string{"items[0].quantity"}},
		{"more than a shopper may buy", `{"items":[{"product_id":3,"quantity":11}]}`, []string{"items[0].quantity"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems := request(t, tc.body).Valid(context.Background())
			if got := slices.Sorted(maps.Keys(problems)); !slices.Equal(got, tc.want) {
				t.Fatalf("problems %v; want them on %v", problems, tc.want)
			}
		})
	}
}

// Lines come sorted by product, whatever the order they were asked in: rows
// and Redis keys are always taken in the same order, so two orders for the
// same products cannot deadlock.
func TestLinesAreSortedByProduct(t *testing.T) {
	lines := request(t, `{"items":[{"product_id":9,"quantity":1},{"product_id":2,"quantity":3},{"product_id":5,"quantity":2}]}`).Lines()
	var ids []int64
	for _, l := range lines {
		ids = append(ids, l.ProductID)
	}
	if !slices.Equal(ids, []int64{2, 5, 9}) || lines[0].Quantity != 3 {
		t.Fatalf("lines %+v; want products 2, 5, 9, each with its quantity", lines)
	}
}

// The idempotency hash is the request's content: the same lines in another
// order are the same request; another quantity or product is another.
func TestHashIsTheContentNotItsOrder(t *testing.T) {
	hash := func(body string) string { return request(t, body).Hash() }
	a := hash(`{"items":[{"product_id":1,"quantity":2},{"product_id":5,"quantity":1}]}`)
	if b := hash(`{"items":[{"product_id":5,"quantity":1},{"product_id":1,"quantity":2}]}`); a != b {
		t.Error("the same lines in another order hash differently")
	}
	for _, other := range []string{
		`{"items":[{"product_id":1,"quantity":3},{"product_id":5,"quantity":1}]}`,
		`{"items":[{"product_id":1,"quantity":2},{"product_id":6,"quantity":1}]}`,
		`{"items":[{"product_id":1,"quantity":2}]}`,
	} {
		if hash(other) == a {
			t.Errorf("%s hashes as the first request", other)
		}
	}
}

// A request's lease on its key is what is left of its deadline, the release
// after it and a margin (fix: timeouts), and never longer than ClaimLease,
// which is also the lease of a request without a deadline.
func TestLeaseFollowsTheDeadline(t *testing.T) {
	within := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		t.Cleanup(cancel)
		return ctx
	}
	after := orders.ReleaseTimeout + orders.LeaseMargin
	for _, c := range []struct {
		name     string
		ctx      context.Context
		min, max time.Duration
	}{
		{"no deadline", context.Background(), orders.ClaimLease, orders.ClaimLease},
		{"3 s left", within(3 * time.Second), 3*time.Second + after - time.Second, 3*time.Second + after},
		{"the deadline passed", within(-time.Second), 0, after - time.Second},
		{"an hour left", within(time.Hour), orders.ClaimLease, orders.ClaimLease},
	} {
		if got := orders.Lease(c.ctx); got < c.min || got > c.max {
			t.Errorf("%s: lease %v, want %v to %v", c.name, got, c.min, c.max)
		}
	}
}
