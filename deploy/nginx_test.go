package deploy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// selfSigned writes a throwaway certificate and key into dir.
func selfSigned(t *testing.T, dir string) (crt, key string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	crt, key = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return crt, key
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// gatewayConfig is the committed nginx.conf with only what differs outside
// compose replaced: upstream addresses, listen ports, certificate paths.
func gatewayConfig(t *testing.T, dir string, upstreams map[string]string, httpAddr, httpsAddr string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy/compose/nginx/nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	crt, key := selfSigned(t, dir)
	for from, to := range map[string]string{
		"server user:8081;":        "server " + upstreams["user"] + ";",
		"server search:8082;":      "server " + upstreams["search"] + ";",
		"server order:8083;":       "server " + upstreams["order"] + ";",
		"listen 8080;":             "listen " + httpAddr + ";",
		"listen 8443 ssl http2;":   "listen " + httpsAddr + " ssl http2;",
		"/etc/nginx/certs/tls.crt": crt,
		"/etc/nginx/certs/tls.key": key,
		"pid /tmp/nginx.pid;":      "pid " + filepath.Join(dir, "nginx.pid") + ";",
		"worker_processes auto;":   "worker_processes 1;",
	} {
		if !strings.Contains(conf, from) {
			t.Fatalf("nginx.conf no longer contains %q", from)
		}
		conf = strings.ReplaceAll(conf, from, to)
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func nginxBinary(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("nginx")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
			return "/usr/sbin/nginx"
		}
		t.Fatal("nginx is required (Debian's nginx-light; .ci/run installs it)")
	}
	return path
}

func TestGatewayProxiesToTheServices(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	// A running upstream per service, answering with what it received.
	upstreams := map[string]string{}
	for _, name := range []string{"user", "search", "order"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]string{"service": name, "method": r.Method, "uri": r.RequestURI,
				"xff": r.Header.Get("X-Forwarded-For"), "proto": r.Header.Get("X-Forwarded-Proto"),
				"request_id": r.Header.Get("X-Request-ID"), "body": string(body)})
		}))
		t.Cleanup(srv.Close)
		upstreams[name] = strings.TrimPrefix(srv.URL, "http://")
	}
	httpAddr, httpsAddr := freePort(t), freePort(t)
	conf := gatewayConfig(t, dir, upstreams, httpAddr, httpsAddr)
	nginx := nginxBinary(t)

	if out, err := exec.Command(nginx, "-t", "-p", dir, "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(nginx, "-p", dir, "-c", conf, "-g", "daemon off;")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = 2 * time.Second // a stray worker must not hold the pipe, and the test, open
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // nginx's fast shutdown: master and workers
		cmd.Wait()
	})

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(method, url, body string, header ...string) (int, map[string]string, http.Header) {
		t.Helper()
		var resp *http.Response
		var err error
		for range 50 { // nginx takes a moment to bind
			req, _ := http.NewRequest(method, url, strings.NewReader(body))
			for i := 0; i+1 < len(header); i += 2 {
				req.Header.Set(header[i], header[i+1])
			}
			if resp, err = client.Do(req); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", method, url, err, stderr.String())
		}
		defer resp.Body.Close()
		m := map[string]string{}
		raw, _ := io.ReadAll(resp.Body)
		json.Unmarshal(raw, &m)
		m["raw"] = string(raw)
		return resp.StatusCode, m, resp.Header
	}

	for path, want := range map[string][2]string{
		"/api/v1/products?q=iphone": {"search", "/v1/products?q=iphone"},
		"/api/v1/users/me":          {"user", "/v1/users/me"},
		"/api/v1/sessions":          {"user", "/v1/sessions"},
		"/api/v1/orders/42":         {"order", "/v1/orders/42"},
	} {
		code, m, _ := get("GET", "http://"+httpAddr+path, "", "X-Request-ID", "trace-me")
		if code != 200 || m["service"] != want[0] || m["uri"] != want[1] {
			t.Errorf("%s: %d %v, want %s at %s", path, code, m, want[0], want[1])
		}
		if m["xff"] != "127.0.0.1" || m["request_id"] != "trace-me" || m["proto"] != "http" {
			t.Errorf("%s: forwarded headers %v", path, m)
		}
	}
	code, m, _ := get("POST", "https://"+httpsAddr+"/api/v1/orders", `{"items":[]}`, "Idempotency-Key", "k")
	if code != 200 || m["method"] != "POST" || m["proto"] != "https" || m["body"] != `{"items":[]}` {
		t.Errorf("POST over TLS: %d %v", code, m)
	}
	for _, path := range []string{"/internal/v1/users/1", "/internal/v1/products/1", "/api/internal/v1/products/1"} {
		code, m, _ = get("GET", "http://"+httpAddr+path, "")
		if code != 404 || !strings.Contains(m["raw"], `"code":"not_found"`) {
			t.Errorf("%s: /internal must not be routed: %d %v", path, code, m)
		}
	}
	code, _, _ = get("POST", "http://"+httpAddr+"/api/v1/orders", strings.Repeat("x", 70<<10))
	if code != 413 {
		t.Errorf("oversized body: %d, want 413", code)
	}
}
