package deploy_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// scripts/compile.sh, which `make replay` runs before the replay, counts the
// packages Go compiles, prints nothing when they are up to date, and fails
// as go build fails, with Go's error in its output: a build that failed must
// not go on to run stale binaries.
func TestCompileScriptCountsPackagesAndKeepsGoStatus(t *testing.T) {
	script, err := filepath.Abs(filepath.Join(root, "scripts", "compile.sh"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// A constant of its own in each package, so that no earlier run of the
	// test has them in Go's build cache.
	stamp := time.Now().UnixNano()
	write := func(name, src string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/m\n\ngo 1.26\n")
	write("a/a.go", fmt.Sprintf("package a\n\nconst Stamp = %d\n", stamp))
	write("b/b.go", fmt.Sprintf("package b\n\nimport \"example.com/m/a\"\n\nconst Stamp = a.Stamp + %d\n", stamp))
	compile := func(args ...string) (string, error) {
		cmd := exec.CommandContext(t.Context(), script, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := compile("./...")
	if err != nil || out != "  2 packages compiled\n" {
		t.Fatalf("first build: %q, %v; want the two packages counted", out, err)
	}
	out, err = compile("./...")
	if err != nil || out != "" {
		t.Fatalf("up to date: %q, %v; want nothing printed", out, err)
	}

	write("c/c.go", "package c\n\nvar _ = undefinedName\n")
	out, err = compile("./...")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("a package that does not compile: %v; want go build's failure", err)
	}
	if !strings.Contains(out, "undefined: undefinedName") {
		t.Fatalf("a package that does not compile: %q; want Go's error passed through", out)
	}
}
