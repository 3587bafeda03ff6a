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
	stages := parseDockerfile(t, "deploy/docker/Dockerfile")
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
	if _, health := finalStage(t, stages); !health {
		t.Error("final stage has no HEALTHCHECK running the binary's healthcheck")
	}
}

// The replay's image: the same rules, without a health check (it is a
// one-shot command, not a service).
func TestReplayDockerfile(t *testing.T) {
	stages := parseDockerfile(t, "deploy/docker/replay.Dockerfile")
	for _, st := range stages {
		for _, cmd := range st.Commands {
			if c, ok := cmd.(*instructions.CopyCommand); ok && c.From == "" {
				for _, src := range c.SourcePaths {
					if _, err := os.Stat(filepath.Join(root, src)); err != nil {
						t.Errorf("COPY %s: %v", src, err)
					}
				}
			}
		}
	}
	finalStage(t, stages)
}

func parseDockerfile(t *testing.T, path string) []instructions.Stage {
	t.Helper()
	f, err := os.Open(filepath.Join(root, path))
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
		t.Fatalf("%s: %d stages, want build and final", path, len(stages))
	}
	return stages
}

// finalStage checks the last stage is distroless static, non-root, and
// reports its user and whether it has the binary's health check.
func finalStage(t *testing.T, stages []instructions.Stage) (user string, health bool) {
	t.Helper()
	final := stages[len(stages)-1]
	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static") || !strings.HasSuffix(final.BaseName, ":nonroot") {
		t.Errorf("final base %s, want distroless static nonroot", final.BaseName)
	}
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
	return user, health
}
