// Package config reads a service's configuration from the environment, once,
// at start (12-factor). Services describe their settings as a typed struct
// and fill it through an Env, which remembers the first problem it meets so a
// loader reads as a flat list of fields, not a ladder of if err != nil.
//
// A missing or malformed value is an *Error naming the variable; main prints
// that one line and exits with code 2 (see ExitCode).
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// ExitCode is the process exit code for a configuration error, distinct from
// 1 (a failure while running) so that a supervisor can tell "fix your env"
// from "crashed".
const ExitCode = 2

// Error is a configuration problem with one variable.
type Error struct {
	Var     string
	Problem string
}

func (e *Error) Error() string { return "config: " + e.Var + ": " + e.Problem }

// IsError reports whether err is (or wraps) a configuration error.
func IsError(err error) bool {
	var ce *Error
	return errors.As(err, &ce)
}

// Secret is a string that never prints: not through fmt, not through slog.
// Reveal is the one, greppable, way to read it.
type Secret struct{ value string }

// NewSecret wraps s; used by tests and by Env.Secret.
func NewSecret(s string) Secret { return Secret{value: s} }

// Reveal returns the secret value; call it only where the value is used.
func (s Secret) Reveal() string { return s.value }

// String redacts the value so %v and %s are safe.
func (s Secret) String() string { return "[redacted]" }

// GoString redacts the value so %#v is safe too.
func (s Secret) GoString() string { return "config.Secret{[redacted]}" }

// LogValue redacts the value in structured logs.
func (s Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Env reads variables through getenv (os.Getenv in main, a map in tests).
type Env struct {
	getenv     func(string) string
	readFile   func(string) ([]byte, error)
	production bool
	err        error
}

// New returns an Env that reads through getenv. APP_ENV is read first because
// it decides which defaults are allowed.
func New(getenv func(string) string) *Env {
	e := &Env{getenv: getenv, readFile: os.ReadFile}
	switch appEnv := e.String("APP_ENV", "development"); appEnv {
	case "development":
	case "production":
		e.production = true
	default:
		e.fail("APP_ENV", fmt.Sprintf("must be development or production, got %q", appEnv))
	}
	return e
}

// Production reports whether APP_ENV=production.
func (e *Env) Production() bool { return e.production }

// Err returns the first problem met, or nil.
func (e *Env) Err() error { return e.err }

func (e *Env) fail(name, problem string) {
	if e.err == nil {
		e.err = &Error{Var: name, Problem: problem}
	}
}

// String returns the variable, or def when it is unset or empty.
func (e *Env) String(name, def string) string {
	if v := strings.TrimSpace(e.getenv(name)); v != "" {
		return v
	}
	return def
}

// Required returns the variable or records that it is missing.
func (e *Env) Required(name string) string {
	v := e.String(name, "")
	if v == "" {
		e.fail(name, "is required")
	}
	return v
}

// DevDefault returns the variable; when it is unset, development gets def and
// production records it as missing. Use it for addresses of local
// dependencies, which are safe to guess on a laptop and wrong to guess in a
// cluster.
func (e *Env) DevDefault(name, def string) string {
	if v := e.String(name, ""); v != "" {
		return v
	}
	if e.production {
		e.fail(name, "is required when APP_ENV=production")
		return ""
	}
	return def
}

// Secret reads NAME, or the file named by NAME_FILE (Docker and Kubernetes
// secrets). Setting both is an error, because one of them would be silently
// ignored. devDefault is used only in development; production refuses to start
// without a real value. An empty devDefault makes the secret required.
func (e *Env) Secret(name, devDefault string) Secret {
	direct := e.String(name, "")
	file := e.String(name+"_FILE", "")
	switch {
	case direct != "" && file != "":
		e.fail(name, "set either "+name+" or "+name+"_FILE, not both")
		return Secret{}
	case file != "":
		b, err := e.readFile(file)
		if err != nil {
			e.fail(name+"_FILE", "cannot read secret file: "+errors.Unwrap(err).Error())
			return Secret{}
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			e.fail(name+"_FILE", "secret file is empty")
		}
		return Secret{value: v}
	case direct != "":
		return Secret{value: direct}
	case devDefault == "":
		e.fail(name, "is required")
	case e.production:
		e.fail(name, "is required when APP_ENV=production (the development default is refused)")
	}
	return Secret{value: devDefault}
}

// List returns a comma-separated variable as its trimmed, non-empty items.
func (e *Env) List(name string) []string {
	var out []string
	for _, item := range strings.Split(e.String(name, ""), ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Int returns the variable as an integer in [lo, hi], or def when unset.
func (e *Env) Int(name string, def, lo, hi int) int {
	s := e.String(name, "")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		e.fail(name, fmt.Sprintf("must be an integer in [%d, %d], got %q", lo, hi, s))
		return def
	}
	return n
}

// Duration returns the variable as a positive time.Duration ("250ms", "5s"),
// or def when unset.
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	return e.duration(name, def, func(s string) (time.Duration, error) { return parsePositive(s, "500ms or 5s") })
}

// DurationOrOff is Duration for a limit that can be switched off: "off"
// (or "0") returns 0.
func (e *Env) DurationOrOff(name string, def time.Duration) time.Duration {
	return e.duration(name, def, ParseDurationOrOff)
}

// duration reads the variable with parse; def when it is unset or wrong (and
// then parse's error says what would do).
func (e *Env) duration(name string, def time.Duration, parse func(string) (time.Duration, error)) time.Duration {
	s := e.String(name, "")
	if s == "" {
		return def
	}
	d, err := parse(s)
	if err != nil {
		e.fail(name, err.Error())
		return def
	}
	return d
}

// ParseDurationOrOff reads a limit that can be switched off, from the
// environment or from an admin request: "off" or "0" is 0, anything else
// must be a positive duration.
func ParseDurationOrOff(s string) (time.Duration, error) {
	if s == "off" || s == "0" {
		return 0, nil
	}
	return parsePositive(s, "10ms, or off")
}

// FormatDurationOrOff writes d as ParseDurationOrOff reads it.
func FormatDurationOrOff(d time.Duration) string {
	if d <= 0 {
		return "off"
	}
	return d.String()
}

// parsePositive parses s as a positive duration; the error says what would
// do (examples).
func parsePositive(s, examples string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("must be a positive duration such as %s, got %q", examples, s)
	}
	return d, nil
}

// URL checks that the value parses as a URL with one of the given schemes and
// a host. The value itself is returned unchanged. The error never echoes the
// value, because URLs carry passwords.
func (e *Env) URL(name, value string, schemes ...string) string {
	if value == "" {
		return value // already reported as missing, or optional
	}
	u, err := url.Parse(value)
	if err != nil {
		e.fail(name, "is not a valid URL")
		return value
	}
	if u.Host == "" {
		e.fail(name, "has no host")
		return value
	}
	for _, s := range schemes {
		if u.Scheme == s {
			return value
		}
	}
	e.fail(name, fmt.Sprintf("scheme must be one of %s, got %q", strings.Join(schemes, ", "), u.Scheme))
	return value
}

// Level reads LOG_LEVEL; the default is debug in development, info in production.
func (e *Env) Level() slog.Level {
	def := "debug"
	if e.production {
		def = "info"
	}
	s := e.String("LOG_LEVEL", def)
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		e.fail("LOG_LEVEL", fmt.Sprintf("must be debug, info, warn or error, got %q", s))
		return slog.LevelInfo
	}
	return l
}
