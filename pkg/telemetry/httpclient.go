package telemetry

import (
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// HTTPClient returns a client for calls to other services: traced (the W3C
// trace context travels in the request headers, so one trace spans the
// services), with a bounded connection pool, and with timeout as a last
// resort behind the caller's context deadline.
func HTTPClient(timeout time.Duration) *http.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 64
	base.ResponseHeaderTimeout = timeout
	return &http.Client{Transport: otelhttp.NewTransport(base), Timeout: timeout}
}
