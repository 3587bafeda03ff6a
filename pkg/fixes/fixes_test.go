package fixes_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/fixes"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		on, off []fixes.Name
		err     string
	}{
		{in: "naive", off: fixes.All},
		{in: "resilient", on: fixes.All},
		{in: "", off: fixes.All},
		{in: "timeouts, breaker", on: []fixes.Name{fixes.Timeouts, fixes.Breaker}, off: []fixes.Name{fixes.Probes}},
		{in: "naive,+breaker", on: []fixes.Name{fixes.Breaker}, off: []fixes.Name{fixes.Timeouts}},
		{in: "resilient,-breaker", on: []fixes.Name{fixes.Timeouts, fixes.Outbox}, off: []fixes.Name{fixes.Breaker}},
		{in: "resilient,nope", err: `unknown fix "nope"; valid: naive, resilient, timeouts, pool_guard`},
		{in: "breaker,naive", err: `unknown fix "naive"`}, // a profile only comes first
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := fixes.Parse(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range tt.on {
				if !s.Has(n) {
					t.Errorf("%s should be on in %q", n, tt.in)
				}
			}
			for _, n := range tt.off {
				if s.Has(n) {
					t.Errorf("%s should be off in %q", n, tt.in)
				}
			}
			back, err := fixes.Parse(s.String())
			if err != nil || back != s {
				t.Errorf("String() %q does not parse back to the same set", s.String())
			}
		})
	}
}

func TestBoardNilIsResilient(t *testing.T) {
	var b *fixes.Board
	for _, n := range fixes.All {
		if !b.On(n) {
			t.Errorf("nil board: %s off", n)
		}
	}
}

func TestAdminFixesHandler(t *testing.T) {
	var logs bytes.Buffer
	board := fixes.NewBoard(fixes.Resilient, slog.New(slog.NewJSONHandler(&logs, nil)))
	r := gin.New()
	r.GET("/admin/fixes", board.HandleGet)
	r.PUT("/admin/fixes", board.HandlePut(func(*gin.Context) string { return "tester" }))

	do := func(method, body string) (int, string) {
		rec := httptest.NewRecorder()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		r.ServeHTTP(rec, httptest.NewRequest(method, "/admin/fixes", rd))
		return rec.Code, rec.Body.String()
	}

	code, body := do(http.MethodPut, `{"fixes":"resilient,-breaker"}`)
	if code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if board.On(fixes.Breaker) || !board.On(fixes.Timeouts) {
		t.Fatalf("board not switched: %s", board.Current())
	}
	var v struct {
		Fixes   string          `json:"fixes"`
		Enabled map[string]bool `json:"enabled"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil || v.Enabled["breaker"] || !v.Enabled["timeouts"] {
		t.Fatalf("PUT answer: %s (%v)", body, err)
	}
	if !strings.Contains(logs.String(), `"by":"tester"`) || !strings.Contains(logs.String(), `"switched_off":["breaker"]`) {
		t.Fatalf("the change must be logged with who and what: %s", logs.String())
	}

	code, body = do(http.MethodPut, `{"fixes":"bogus"}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "pool_guard") || !strings.Contains(body, `"code":"invalid"`) {
		t.Fatalf("unknown fix: got %d %s, want 400 naming the valid ones", code, body)
	}
	code, _ = do(http.MethodPut, `{}`)
	if code != http.StatusBadRequest {
		t.Fatalf("missing fixes: got %d", code)
	}
	if board.On(fixes.Breaker) {
		t.Fatal("a refused change must not change the board")
	}
	code, body = do(http.MethodGet, "")
	if code != http.StatusOK || !strings.Contains(body, `"breaker":false`) {
		t.Fatalf("GET: %d %s", code, body)
	}
}

// FuzzParse: a FIXES value comes from the environment or from PUT
// /admin/fixes. Whatever it is, Parse names the unknown word or returns a
// set, and a set renders (String, what GET /admin/fixes shows) to a value
// that parses back to the same set.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "naive", "resilient", "resilient,-breaker", "naive,+probes,+timeouts", " , ,", "+", "-", "naive,naive", "breaker,-breaker,+breaker", "spaceships"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := fixes.Parse(s)
		if err != nil {
			var unknown *fixes.UnknownError
			if !errors.As(err, &unknown) || !strings.Contains(s, unknown.Name) {
				t.Fatalf("Parse(%q): %v, want an *UnknownError naming a word of it", s, err)
			}
			return
		}
		again, err := fixes.Parse(set.String())
		if err != nil || again != set {
			t.Fatalf("Parse(%q) = %v, rendered %q, parsed back to %v, %v", s, set, set.String(), again, err)
		}
	})
}
