package deploy_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// The Dockerfile parses as docker build parses it, copies only paths that
// exist for each service, and ends in a non-root stage with a health check.
func TestDockerfile(t *testing.T) {
	f, err := os.Open(filepath.Join(root, "deploy/docker/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ast, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	stages, _, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		t.Fatalf("instructions: %v", err)
	}
	if len(stages) != 2 {
		t.Fatalf("%d stages, want build and final", len(stages))
	}
	for _, service := range []string{"user", "search", "order"} {
		expand := func(s string) string {
			return os.Expand(s, func(k string) string {
				if k == "SERVICE" {
					return service
				}
				t.Fatalf("COPY uses $%s, unknown to this test", k)
				return ""
			})
		}
		for _, st := range stages {
			for _, cmd := range st.Commands {
				c, ok := cmd.(*instructions.CopyCommand)
				if !ok || c.From != "" {
					continue
				}
				for _, src := range c.SourcePaths {
					if _, err := os.Stat(filepath.Join(root, expand(src))); err != nil {
						t.Errorf("%s: COPY %s: %v", service, src, err)
					}
				}
			}
		}
	}
	final := stages[len(stages)-1]
	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static") || !strings.HasSuffix(final.BaseName, ":nonroot") {
		t.Errorf("final base %s, want distroless static nonroot", final.BaseName)
	}
	var user string
	var health bool
	for _, cmd := range final.Commands {
		switch c := cmd.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.HealthCheckCommand:
			health = strings.Join(c.Health.Test, " ") == "CMD /app healthcheck"
		}
	}
	if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
		t.Errorf("final stage runs as %q, want a non-root user", user)
	}
	if !health {
		t.Error("final stage has no HEALTHCHECK running the binary's healthcheck")
	}
}
