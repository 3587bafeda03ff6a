package deploy_test

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

const root = ".." // the repository

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithResolvedPaths(true), cli.WithProfiles([]string{"*"}), cli.WithEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

// apps are the compose services that run our binaries: service → package.
var apps = map[string]string{"user": "./services/user", "search": "./services/search", "order": "./services/order",
	"seed-search": "./services/search", "seed-order": "./services/order", "replay": "./loadtest/cmd/replay"}

func TestComposeLoadsAndEverythingItReferencesExists(t *testing.T) {
	p := loadCompose(t)
	for _, want := range []string{"postgres", "toxiproxy", "redis", "nats", "jaeger", "prometheus", "grafana",
		"user", "search", "order", "seed-search", "seed-order", "certs", "gateway", "replay"} {
		if _, ok := p.Services[want]; !ok {
			t.Errorf("service %s missing", want)
		}
	}
	published := map[string]string{}
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			switch v.Type {
			case types.VolumeTypeBind:
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s, which does not exist", name, v.Source)
				}
			case types.VolumeTypeVolume:
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("%s uses volume %s, which is not declared", name, v.Source)
				}
			}
		}
		for _, sec := range s.Secrets {
			if _, err := os.Stat(p.Secrets[sec.Source].File); err != nil {
				t.Errorf("%s: secret %s has no file", name, sec.Source)
			}
		}
		for dep := range s.DependsOn {
			if _, ok := p.Services[dep]; !ok {
				t.Errorf("%s depends on %s, which does not exist", name, dep)
			}
		}
		for _, port := range s.Ports {
			if other, taken := published[port.Published]; taken {
				t.Errorf("port %s published by %s and %s", port.Published, name, other)
			}
			published[port.Published] = name
		}
		if s.Build != nil {
			if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("%s builds from %s, which does not exist", name, s.Build.Dockerfile)
			}
		}
	}
	for name := range apps {
		s := p.Services[name]
		if s.Deploy == nil || s.Deploy.Resources.Limits == nil || s.Deploy.Resources.Limits.MemoryBytes == 0 || s.Deploy.Resources.Limits.NanoCPUs == 0 {
			t.Errorf("%s has no CPU and memory limits", name)
		}
		oneShot := strings.HasPrefix(name, "seed-") || name == "replay"
		if !oneShot && (s.HealthCheck == nil || s.HealthCheck.Disable || strings.Join(s.HealthCheck.Test, " ") != "CMD /app healthcheck") {
			t.Errorf("%s: health check %+v, want the binary's own", name, s.HealthCheck)
		}
	}
	for _, app := range []string{"user", "search", "order"} {
		for dep, d := range p.Services[app].DependsOn {
			if d.Condition != types.ServiceConditionHealthy && d.Condition != types.ServiceConditionCompletedSuccessfully {
				t.Errorf("%s depends on %s with condition %q, want healthy or completed", app, dep, d.Condition)
			}
		}
	}
	for _, port := range []string{"8080", "8443"} {
		if published[port] != "gateway" {
			t.Errorf("port %s is published by %q, want the gateway", port, published[port])
		}
	}
}

var (
	buildOnce sync.Map
)

// binary builds a service (in workspace mode, from the repository root).
func binary(t *testing.T, pkg string) string {
	t.Helper()
	out := filepath.Join(os.TempDir(), "stampede-deploy-test-"+filepath.Base(pkg))
	once, _ := buildOnce.LoadOrStore(pkg, &sync.Once{})
	var err error
	var output []byte
	once.(*sync.Once).Do(func() {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		output, err = cmd.CombinedOutput()
	})
	if err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, output)
	}
	return out
}

// Every service's environment in compose is a complete configuration: the
// service's own loader accepts it (the check-config subcommand), with the
// secrets read from the files compose would mount.
func TestComposeEnvironmentsAreCompleteConfigurations(t *testing.T) {
	p := loadCompose(t)
	for name, service := range apps {
		t.Run(name, func(t *testing.T) {
			s := p.Services[name]
			env := []string{"PATH=" + os.Getenv("PATH")}
			for k, v := range s.Environment {
				if v == nil {
					t.Fatalf("%s is declared without a value", k)
				}
				value := *v
				if secret, ok := strings.CutPrefix(value, "/run/secrets/"); ok {
					value = p.Secrets[secret].File // where compose would mount it from
				}
				env = append(env, k+"="+value)
			}
			check := "check-config" // the replay's own: -check
			if name == "replay" {
				check = "-check"
			}
			cmd := exec.Command(binary(t, service), append([]string{check}, s.Command...)...)
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("the %s configuration is refused: %v\n%s", name, err, out)
			}
		})
	}
	// And the check can fail: without DATABASE_URL the same binary refuses.
	cmd := exec.Command(binary(t, "./services/user"), "check-config")
	cmd.Env = []string{"APP_ENV=production"}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "DATABASE_URL") {
		t.Fatalf("check-config accepted an empty environment: %s", out)
	}
}

// The replay's faults act on Toxiproxy's proxies (loadtest/stack, Remote):
// every proxy in toxiproxy.json forwards to a compose service, and the shop
// really goes through it — all three services reach Postgres, Redis and NATS
// only through their proxies, and the order service the user service through
// "users" — or cutting it would cut nothing.
func TestComposeFaultsGoThroughToxiproxy(t *testing.T) {
	p := loadCompose(t)
	data, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "toxiproxy", "toxiproxy.json"))
	if err != nil {
		t.Fatal(err)
	}
	var proxies []struct{ Name, Listen, Upstream string }
	if err := json.Unmarshal(data, &proxies); err != nil {
		t.Fatal(err)
	}
	via := map[string]string{} // proxy name → host:port the services use
	for _, px := range proxies {
		host, _, err := net.SplitHostPort(px.Upstream)
		if _, ok := p.Services[host]; err != nil || !ok {
			t.Errorf("proxy %s forwards to %q, not a compose service", px.Name, px.Upstream)
		}
		_, port, _ := net.SplitHostPort(px.Listen)
		via[px.Name] = "toxiproxy:" + port
	}
	env := func(svc, name string) string {
		if v := p.Services[svc].Environment[name]; v != nil {
			return *v
		}
		return ""
	}
	for _, svc := range []string{"user", "search", "order"} {
		for variable, proxy := range map[string]string{"DATABASE_URL": "postgres", "REDIS_URL": "redis", "NATS_URL": "nats"} {
			if u, err := url.Parse(env(svc, variable)); via[proxy] == "" || err != nil || u.Host != via[proxy] {
				t.Errorf("%s: %s=%q does not go through Toxiproxy's %q proxy (%s)", svc, variable, env(svc, variable), proxy, via[proxy])
			}
		}
	}
	if via["users"] == "" || env("order", "USER_SERVICE_URL") != "http://"+via["users"] {
		t.Errorf("order: USER_SERVICE_URL=%q, want the %q proxy (%s)", env("order", "USER_SERVICE_URL"), "users", via["users"])
	}
}
