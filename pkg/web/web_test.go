package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/logging"
	"github.com/stampede-shop/stampede/pkg/web"
)

type signup struct {
	Email string `json:"email"`
	Age   int    `json:"age"`
}

func (s signup) Valid(context.Context) map[string]string {
	if s.Email == "" {
		return map[string]string{"email": "is required"}
	}
	return nil
}

type errBody struct {
	Error struct {
		Code      string            `json:"code"`
		Message   string            `json:"message"`
		Fields    map[string]string `json:"fields"`
		RequestID string            `json:"request_id"`
	} `json:"error"`
}

func serve(t *testing.T, h gin.HandlerFunc, body io.Reader) (*httptest.ResponseRecorder, errBody) {
	t.Helper()
	r := gin.New()
	r.POST("/", func(c *gin.Context) {
		c.Request = c.Request.WithContext(logging.WithRequestID(c.Request.Context(), "req-1"))
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, 64)
		h(c)
	})
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", body))
	var eb errBody
	_ = json.Unmarshal(rec.Body.Bytes(), &eb)
	return rec, eb
}

func TestDecode(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	handler := func(c *gin.Context) {
		v, err := web.Decode[signup](c)
		if err != nil {
			web.Abort(c, log, err)
			return
		}
		c.JSON(http.StatusOK, v)
	}
	tests := []struct {
		name, body string
		status     int
		code       string
	}{
		{"ok", `{"email":"a@b.c","age":3}`, 200, ""},
		{"empty", ``, 400, "invalid_json"},
		{"malformed", `{"email":`, 400, "invalid_json"},
		{"syntax", `{"email" "x"}`, 400, "invalid_json"},
		{"wrong type", `{"email":"a","age":"old"}`, 400, "invalid_json"},
		{"unknown field", `{"email":"a","admin":true}`, 400, "invalid_json"},
		{"two objects", `{"email":"a"}{"email":"b"}`, 400, "invalid_json"},
		{"array", `[1,2]`, 400, "invalid_json"},
		{"too large", `{"email":"` + strings.Repeat("x", 100) + `"}`, 413, "body_too_large"},
		{"invalid", `{"age":3}`, 400, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, eb := serve(t, handler, strings.NewReader(tt.body))
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if eb.Error.Code != tt.code {
				t.Fatalf("code %q, want %q", eb.Error.Code, tt.code)
			}
			if tt.code != "" && eb.Error.RequestID != "req-1" {
				t.Fatalf("request_id missing: %s", rec.Body)
			}
			if tt.code == "invalid" && eb.Error.Fields["email"] != "is required" {
				t.Fatalf("fields missing: %s", rec.Body)
			}
		})
	}
}

type busy struct{}

func (busy) Error() string             { return "busy" }
func (busy) Code() string              { return "pool_timeout" }
func (busy) RetryAfter() time.Duration { return 1500 * time.Millisecond }

func TestAbort(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		retryAfter string
	}{
		{"client error", web.NewError(409, "sold_out", "gone"), 409, "sold_out", ""},
		{"wrapped client error", fmt.Errorf("ctx: %w", web.ErrNotFound), 404, "not_found", ""},
		{"overload", fmt.Errorf("db: %w", busy{}), 503, "pool_timeout", "2"},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), 503, "timeout", "1"},
		{"internal", errors.New("pq: secret detail"), 500, "internal", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, nil))
			rec, eb := serve(t, func(c *gin.Context) { web.Abort(c, log, tt.err) }, nil)
			if rec.Code != tt.status || eb.Error.Code != tt.code {
				t.Fatalf("got %d %q, want %d %q", rec.Code, eb.Error.Code, tt.status, tt.code)
			}
			if got := rec.Header().Get("Retry-After"); got != tt.retryAfter {
				t.Fatalf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if tt.status == 500 {
				if strings.Contains(rec.Body.String(), "secret detail") {
					t.Fatal("internal details must not reach the client")
				}
				if !strings.Contains(logs.String(), "secret detail") {
					t.Fatal("internal details must reach the log")
				}
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	most := 5 * time.Second
	soon := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name     string
		value    string
		min, max time.Duration // an HTTP date counts whole seconds from now
	}{
		{"missing", "", 0, 0},
		{"seconds", "2", 2 * time.Second, 2 * time.Second},
		{"capped", "120", most, most},
		{"too large to multiply", "99999999999999", most, most},
		{"negative", "-3", 0, 0},
		{"zero", "0", 0, 0},
		{"malformed", "soon", 0, 0},
		{"date", soon, 1 * time.Second, 3 * time.Second},
		{"date in the past", "Wed, 21 Oct 2015 07:28:00 GMT", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.value != "" {
				h.Set("Retry-After", tt.value)
			}
			if got := web.RetryAfter(h, most); got < tt.min || got > tt.max {
				t.Fatalf("RetryAfter(%q) = %v, want %v–%v", tt.value, got, tt.min, tt.max)
			}
		})
	}

	t.Run("reads what Abort writes", func(t *testing.T) {
		rec, _ := serve(t, func(c *gin.Context) { web.Abort(c, slog.New(slog.DiscardHandler), busy{}) }, nil)
		if got := web.RetryAfter(rec.Header(), most); got != 2*time.Second {
			t.Fatalf("RetryAfter = %v, want 2s (1.5 s rounded up)", got)
		}
	})
}
