package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/stampede-shop/stampede/pkg/telemetry"
)

// A call made with the client carries the caller's trace to the callee.
func TestHTTPClientPropagatesTraceContext(t *testing.T) {
	shutdown, err := telemetry.SetupTracing(context.Background(), "test", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())

	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Get("traceparent") }))
	defer srv.Close()

	ctx, span := otel.Tracer("test").Start(context.Background(), "caller")
	defer span.End()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := telemetry.HTTPClient(time.Second).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	tp := <-got
	want := span.SpanContext().TraceID().String()
	if len(tp) != 55 || tp[3:35] != want {
		t.Fatalf("traceparent %q does not carry trace %s", tp, want)
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		t.Fatal("no span in the caller's context")
	}
}
