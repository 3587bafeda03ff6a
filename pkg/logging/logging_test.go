package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/stampede-shop/stampede/pkg/logging"
)

func TestLineShape(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, "user", slog.LevelInfo)

	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "op")
	defer span.End()
	ctx = logging.WithRequestID(ctx, "r-42")

	log.DebugContext(ctx, "hidden")
	log.InfoContext(ctx, "order created", "order_id", "o1")

	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("want exactly one JSON line (debug filtered), got %q: %v", buf.String(), err)
	}
	want := map[string]any{
		"level": "INFO", "message": "order created", "service": "user",
		"request_id": "r-42", "trace_id": span.SpanContext().TraceID().String(), "order_id": "o1",
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("%s = %v, want %v", k, line[k], v)
		}
	}
	if _, ok := line["timestamp"]; !ok {
		t.Error("timestamp missing")
	}
}

func TestNoIDsWithoutContext(t *testing.T) {
	var buf bytes.Buffer
	logging.New(&buf, "user", slog.LevelInfo).Info("boot")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if _, ok := line["request_id"]; ok {
		t.Error("request_id on a line with no request")
	}
	if _, ok := line["trace_id"]; ok {
		t.Error("trace_id on a line with no span")
	}
}
