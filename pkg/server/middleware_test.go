package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/server"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func board(t *testing.T, s string) *fixes.Board {
	t.Helper()
	set, err := fixes.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return fixes.NewBoard(set, quiet)
}

func TestRecover(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(map[bool]string{true: "fix on", false: "fix off"}[on], func(t *testing.T) {
			b := board(t, map[bool]string{true: "recovery", false: "naive"}[on])
			r := gin.New()
			r.Use(server.Recover(quiet, b))
			r.GET("/", func(*gin.Context) { panic("boom") })
			rec := httptest.NewRecorder()
			panicked := func() (p any) {
				defer func() { p = recover() }()
				r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
				return nil
			}()
			if on {
				if panicked != nil || rec.Code != 500 || !strings.Contains(rec.Body.String(), `"code":"internal"`) {
					t.Fatalf("fix on: want a JSON 500, got panic=%v %d %s", panicked, rec.Code, rec.Body)
				}
				return
			}
			if panicked == nil {
				t.Fatal("fix off: the panic must travel on to net/http")
			}
		})
	}
}

// A panic in a goroutine a handler starts ends the process unless it is
// recovered there. The fix-off half runs in a child process, which must die.
func TestGoRecoversPanics(t *testing.T) {
	if os.Getenv("STAMPEDE_CRASH_CHILD") == "1" {
		done := server.Go(context.Background(), quiet, board(t, "naive"), func(context.Context) error { panic("in goroutine") })
		<-done
		return
	}
	t.Run("fix on", func(t *testing.T) {
		err := <-server.Go(context.Background(), quiet, board(t, "recovery"), func(context.Context) error { panic("in goroutine") })
		var pe *server.PanicError
		if !errors.As(err, &pe) || pe.Value != "in goroutine" || len(pe.Stack) == 0 {
			t.Fatalf("want a PanicError with a stack, got %v", err)
		}
	})
	t.Run("fix off", func(t *testing.T) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestGoRecoversPanics$")
		cmd.Env = append(os.Environ(), "STAMPEDE_CRASH_CHILD=1")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || !strings.Contains(string(out), "panic: in goroutine") {
			t.Fatalf("want the process to crash with the panic, got err=%v output:\n%s", err, out)
		}
	})
	t.Run("no panic", func(t *testing.T) {
		want := errors.New("plain")
		if err := <-server.Go(context.Background(), quiet, board(t, "recovery"), func(context.Context) error { return want }); !errors.Is(err, want) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestBodyLimit(t *testing.T) {
	big := strings.Repeat("x", 2048)
	for _, tt := range []struct {
		fixes      string
		length     int64 // declared Content-Length; -1 = unknown (chunked)
		wantStatus int
	}{
		{"body_limit", 2048, 413},
		{"body_limit", -1, 413},
		{"naive", 2048, 200},
		{"naive", -1, 200},
	} {
		r := gin.New()
		r.Use(server.BodyLimit(1024, quiet, board(t, tt.fixes)))
		r.POST("/", func(c *gin.Context) {
			if _, err := io.ReadAll(c.Request.Body); err != nil {
				c.AbortWithStatusJSON(413, gin.H{"error": gin.H{"code": "body_too_large"}})
				return
			}
			c.Status(200)
		})
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(big))
		req.ContentLength = tt.length
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code != tt.wantStatus {
			t.Errorf("fixes=%s length=%d: got %d, want %d", tt.fixes, tt.length, rec.Code, tt.wantStatus)
		}
	}
}

func TestRequestID(t *testing.T) {
	r := gin.New()
	r.Use(server.RequestID())
	r.GET("/", func(c *gin.Context) { c.Status(204) })
	for _, tt := range []struct{ in, want string }{
		{"abc-123", "abc-123"},
		{"", ""},
		{"evil\nline", ""},
		{strings.Repeat("a", 200), ""},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("X-Request-ID", tt.in)
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-ID")
		if tt.want != "" && got != tt.want {
			t.Errorf("%q: got %q, want it honoured", tt.in, got)
		}
		if tt.want == "" && (got == tt.in || len(got) != 24) {
			t.Errorf("%q: got %q, want a fresh id", tt.in, got)
		}
	}
}

// The access log: a 500 is an error line, a client's mistake an info line; a
// refusal the service chose to make (429/503 with Retry-After) and a conflict
// (409: sold out) are debug, like a success, so that shedding or selling out
// a thousand requests a second does not write a thousand lines.
func TestAccessLogLevels(t *testing.T) {
	gin.SetMode(gin.TestMode)
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r := gin.New()
	r.Use(server.AccessLog(log))
	r.GET("/shed", func(c *gin.Context) { c.Header("Retry-After", "1"); c.Status(http.StatusServiceUnavailable) })
	r.GET("/limited", func(c *gin.Context) { c.Header("Retry-After", "1"); c.Status(http.StatusTooManyRequests) })
	r.GET("/broken", func(c *gin.Context) { c.Status(http.StatusInternalServerError) })
	r.GET("/down", func(c *gin.Context) { c.Status(http.StatusServiceUnavailable) }) // no Retry-After: not a chosen refusal
	r.GET("/bad", func(c *gin.Context) { c.Status(http.StatusBadRequest) })
	r.GET("/sold-out", func(c *gin.Context) { c.Status(http.StatusConflict) })
	for _, path := range []string{"/shed", "/limited", "/broken", "/down", "/bad", "/sold-out"} {
		r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, path, nil))
	}
	out := buf.String()
	for path, want := range map[string]string{"/broken": "ERROR", "/down": "ERROR", "/bad": "INFO"} {
		if !strings.Contains(out, `"level":"`+want+`","msg":"request","method":"GET","route":"`+path+`"`) {
			t.Errorf("%s: no %s line in\n%s", path, want, out)
		}
	}
	for _, path := range []string{"/shed", "/limited", "/sold-out"} {
		if strings.Contains(out, `"route":"`+path+`"`) {
			t.Errorf("%s: a refusal or a conflict was logged above debug:\n%s", path, out)
		}
	}
}
