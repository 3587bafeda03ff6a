package testkit

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// UntilAnswered asks again after "come back later" and stops at an answer.
// The 409 request_in_progress is "later": beside busy loops, up to 20 of
// the flash-sale test's buyers a run were told that an earlier attempt of
// theirs still held its key, took it for "sold out", and made the test's
// count of answers a matter of chance.
func TestUntilAnsweredComesBackLater(t *testing.T) {
	for _, tc := range []struct {
		name     string
		answers  []string // the server's answers in turn, the last one for ever
		status   int
		attempts int64
	}{
		{"later, later, answered", []string{"503", "409 request_in_progress", "201"}, http.StatusCreated, 3},
		{"a conflict that is an answer", []string{"409 sold_out", "201"}, http.StatusConflict, 1},
		{"a client error", []string{"400", "201"}, http.StatusBadRequest, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var attempts atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				n := int(attempts.Add(1))
				switch a := tc.answers[min(n, len(tc.answers))-1]; a {
				case "503":
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(http.StatusServiceUnavailable)
					_, _ = w.Write([]byte(`{"error":{"code":"pool_timeout"}}`))
				case "409 request_in_progress", "409 sold_out":
					w.WriteHeader(http.StatusConflict)
					_, _ = w.Write([]byte(`{"error":{"code":"` + a[4:] + `"}}`))
				case "400":
					w.WriteHeader(http.StatusBadRequest)
					_, _ = w.Write([]byte(`{"error":{"code":"invalid"}}`))
				default:
					w.WriteHeader(http.StatusCreated)
					_, _ = w.Write([]byte(`{"id":"order-1"}`))
				}
			}))
			defer srv.Close()
			r := UntilAnswered(t, func() *http.Request {
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/orders", http.NoBody)
				return req
			})
			if r.Status != tc.status || attempts.Load() != tc.attempts {
				t.Fatalf("answered %d after %d attempts, want %d after %d", r.Status, attempts.Load(), tc.status, tc.attempts)
			}
		})
	}
}
