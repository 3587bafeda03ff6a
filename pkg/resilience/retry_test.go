package resilience_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/pkg/web"
)

func TestRetryBudgetCapsRetriesWhenEverythingFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		budget := resilience.NewRetryBudget(0.1, 10)
		policy := resilience.RetryPolicy{Name: "user", MaxAttempts: 3, Budget: budget}
		attempts := 0
		for range 1000 {
			_ = resilience.RetryIdempotent(context.Background(), policy, nil, func(context.Context) error {
				attempts++
				return errDown
			})
		}
		// Without a budget: 3000 attempts. With it: 1000 calls + 10% + the saved 10.
		if retries := attempts - 1000; retries > 110 || retries < 100 {
			t.Fatalf("%d retries for 1000 failing calls, want about 100 (10%% + 10 saved)", retries)
		}
	})
}

func TestRetryStopsOnSuccessAndOnClientErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		policy := resilience.RetryPolicy{MaxAttempts: 5, Budget: resilience.NewRetryBudget(0.1, 100)}
		n := 0
		err := resilience.RetryIdempotent(context.Background(), policy, nil, func(context.Context) error {
			if n++; n < 3 {
				return errDown
			}
			return nil
		})
		if err != nil || n != 3 {
			t.Fatalf("transient failure: err=%v after %d attempts, want success on the 3rd", err, n)
		}
		n = 0
		notFound := web.NewError(http.StatusNotFound, "not_found", "no")
		err = resilience.RetryIdempotent(context.Background(), policy, nil, func(context.Context) error { n++; return notFound })
		if !errors.Is(err, notFound) || n != 1 {
			t.Fatalf("a 404 must not be retried: %d attempts", n)
		}
		n = 0
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		_ = resilience.RetryIdempotent(ctx, resilience.RetryPolicy{MaxAttempts: 100, BaseDelay: 20 * time.Millisecond, Budget: resilience.NewRetryBudget(1, 100)}, nil,
			func(context.Context) error { n++; return errDown })
		if n >= 100 {
			t.Fatalf("retries must stop when the caller's deadline passes (%d attempts)", n)
		}
	})
}

func TestBulkhead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := resilience.NewBulkhead("search", 2, 10*time.Millisecond, nil)
		hold := make(chan struct{})
		for range 2 {
			go b.Do(context.Background(), func(context.Context) error { <-hold; return nil })
		}
		synctest.Wait()
		t0 := time.Now()
		err := b.Do(context.Background(), func(context.Context) error { return nil })
		var full *resilience.FullError
		if !errors.As(err, &full) || time.Since(t0) != 10*time.Millisecond {
			t.Fatalf("full bulkhead: %v after %v, want FullError after the 10ms wait", err, time.Since(t0))
		}
		close(hold)
		synctest.Wait()
		if err := b.Do(context.Background(), func(context.Context) error { return nil }); err != nil {
			t.Fatalf("after release: %v", err)
		}
	})
}
