package config_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stampede-shop/stampede/pkg/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

const dbURL = "postgres://app:s3cret@db:5432/users"

func TestLoadCommonErrors(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "token")
	if err := os.WriteFile(secretFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string // "" means no error
	}{
		{"development defaults", map[string]string{"DATABASE_URL": dbURL}, ""},
		{"missing DATABASE_URL", map[string]string{}, "DATABASE_URL"},
		{"bad APP_ENV", map[string]string{"APP_ENV": "staging", "DATABASE_URL": dbURL}, "APP_ENV"},
		{"DATABASE_URL wrong scheme", map[string]string{"DATABASE_URL": "mysql://db/x"}, "DATABASE_URL"},
		{"REDIS_URL without host", map[string]string{"DATABASE_URL": dbURL, "REDIS_URL": "redis://"}, "REDIS_URL"},
		{"bad duration", map[string]string{"DATABASE_URL": dbURL, "REQUEST_TIMEOUT": "soon"}, "REQUEST_TIMEOUT"},
		{"negative duration", map[string]string{"DATABASE_URL": dbURL, "REQUEST_TIMEOUT": "-1s"}, "REQUEST_TIMEOUT"},
		{"zero duration", map[string]string{"DATABASE_URL": dbURL, "REQUEST_TIMEOUT": "0"}, "REQUEST_TIMEOUT"},
		{"CPU wait off", map[string]string{"DATABASE_URL": dbURL, "SHED_TARGET_CPU_WAIT": "off"}, ""},
		{"CPU wait malformed", map[string]string{"DATABASE_URL": dbURL, "SHED_TARGET_CPU_WAIT": "never"}, "SHED_TARGET_CPU_WAIT"},
		{"CPU wait negative", map[string]string{"DATABASE_URL": dbURL, "SHED_TARGET_CPU_WAIT": "-1ms"}, "SHED_TARGET_CPU_WAIT"},
		{"int out of range", map[string]string{"DATABASE_URL": dbURL, "DB_MAX_OPEN_CONNS": "0"}, "DB_MAX_OPEN_CONNS"},
		{"bad log level", map[string]string{"DATABASE_URL": dbURL, "LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{"secret and secret file", map[string]string{"DATABASE_URL": dbURL, "ADMIN_TOKEN": "x", "ADMIN_TOKEN_FILE": secretFile}, "ADMIN_TOKEN"},
		{"unreadable secret file", map[string]string{"DATABASE_URL": dbURL, "ADMIN_TOKEN_FILE": filepath.Join(dir, "nope")}, "ADMIN_TOKEN_FILE"},
		{"production refuses dev secret", map[string]string{"APP_ENV": "production", "DATABASE_URL": dbURL,
			"REDIS_URL": "redis://r:6379", "NATS_URL": "nats://n:4222"}, "ADMIN_TOKEN"},
		{"production needs NATS_URL", map[string]string{"APP_ENV": "production", "DATABASE_URL": dbURL,
			"REDIS_URL": "redis://r:6379", "ADMIN_TOKEN": "real"}, "NATS_URL"},
		{"production complete", map[string]string{"APP_ENV": "production", "DATABASE_URL": dbURL,
			"REDIS_URL": "redis://r:6379", "NATS_URL": "nats://n:4222", "ADMIN_TOKEN_FILE": secretFile}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := config.New(env(tt.env))
			config.LoadCommon(e, "user", ":8081", ":9081")
			err := e.Err()
			if tt.wantVar == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a config error naming %s", err, tt.wantVar)
			}
			if ce.Var != tt.wantVar {
				t.Fatalf("error names %s (%v), want %s", ce.Var, err, tt.wantVar)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error must be one line without secrets: %q", err)
			}
		})
	}
}

func TestLoadCommonValues(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "token")
	if err := os.WriteFile(f, []byte("  from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := config.New(env(map[string]string{"DATABASE_URL": dbURL, "ADMIN_TOKEN_FILE": f,
		"DB_MAX_OPEN_CONNS": "4", "DB_MAX_IDLE_CONNS": "9", "TRUSTED_PROXIES": "10.0.0.1, 10.0.0.0/8 ,"}))
	c := config.LoadCommon(e, "user", ":8081", ":9081")
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
	if got := c.AdminToken.Reveal(); got != "from-file" {
		t.Errorf("ADMIN_TOKEN_FILE: got %q, want trimmed file content", got)
	}
	if c.HTTPAddr != ":8081" || c.AdminAddr != ":9081" {
		t.Errorf("addresses: got %s %s", c.HTTPAddr, c.AdminAddr)
	}
	if c.DB.MaxOpen != 4 || c.DB.MaxIdle != 4 {
		t.Errorf("pool: got open=%d idle=%d, want idle capped at open=4", c.DB.MaxOpen, c.DB.MaxIdle)
	}
	if len(c.TrustedProxies) != 2 || c.TrustedProxies[1] != "10.0.0.0/8" {
		t.Errorf("TRUSTED_PROXIES: got %q", c.TrustedProxies)
	}
	if c.LogLevel != slog.LevelDebug {
		t.Errorf("development log level: got %v, want debug", c.LogLevel)
	}
}

// The CPU cap is on unless switched off, in either spelling.
func TestShedCPUWait(t *testing.T) {
	for value, want := range map[string]time.Duration{"": 20 * time.Millisecond, "2ms": 2 * time.Millisecond, "off": 0, "0": 0} {
		e := config.New(env(map[string]string{"DATABASE_URL": dbURL, "SHED_TARGET_CPU_WAIT": value}))
		c := config.LoadCommon(e, "order", ":8083", ":9083")
		if err := e.Err(); err != nil {
			t.Fatalf("%q: %v", value, err)
		}
		if c.Requests.ShedCPUWait != want {
			t.Errorf("SHED_TARGET_CPU_WAIT=%q: got %v, want %v", value, c.Requests.ShedCPUWait, want)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := config.NewSecret("hunter2")
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "token", s, "nested", struct{ S config.Secret }{s})
	out := buf.String() + fmt.Sprintf("%v %s %+v %#v", s, s, s, s)
	if strings.Contains(out, "hunter2") {
		t.Fatalf("secret leaked: %s", out)
	}
	if s.Reveal() != "hunter2" {
		t.Fatal("Reveal must return the value")
	}
}

// FuzzParseDurationOrOff: SHED_TARGET_CPU_WAIT and PUT /admin/shedding read
// the same way. Whatever the value, it is an error or a target (0 for off),
// and a target written back (what GET /admin/shedding shows) reads the same.
func FuzzParseDurationOrOff(f *testing.F) {
	for _, s := range []string{"off", "0", "10ms", "1.5s", "-5ms", "0s", "soon", "", "9223372036854775807ns", "1h1m1s1ms1us1ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := config.ParseDurationOrOff(s)
		if err != nil {
			if d != 0 || !strings.Contains(err.Error(), "positive duration") {
				t.Fatalf("%q: %v, %v; want 0 and an error saying what would do", s, d, err)
			}
			return
		}
		if d < 0 || (d == 0) != (s == "off" || s == "0") {
			t.Fatalf("%q read as %v", s, d)
		}
		back, err := config.ParseDurationOrOff(config.FormatDurationOrOff(d))
		if err != nil || back != d {
			t.Fatalf("%q read as %v, written %q, read back as %v, %v", s, d, config.FormatDurationOrOff(d), back, err)
		}
	})
}
