package main

import (
	"net/http"
	"testing"

	"github.com/stampede-shop/stampede/pkg/testkit"
)

const testSecret = "test-secret-test-secret-test-secret"

// instance is a user service running in-process on real Postgres, Redis and
// NATS, in a database, key prefix and stream namespace of its own.
type instance struct{ *testkit.Instance }

func testEnv(t testing.TB) map[string]string {
	t.Helper()
	env := testkit.Env(t)
	env["JWT_SECRET"] = testSecret
	env["BCRYPT_COST"] = "4" // the minimum: tests measure behaviour, not hashing
	return env
}

func startWith(t *testing.T, env map[string]string) *instance {
	t.Helper()
	return &instance{testkit.Start(t, run, env)}
}

// start runs an instance and waits until it is ready.
func start(t *testing.T) *instance {
	t.Helper()
	return &instance{testkit.StartReady(t, run, testEnv(t))}
}

// register creates a user and returns its id and a session token.
func (in *instance) register(t *testing.T, email string) (id int64, token string) {
	t.Helper()
	r := in.Do(t, "POST", "/v1/users", "", `{"email":"`+email+`","password":"correct horse battery","name":"Test"}`)
	if r.Status != http.StatusCreated {
		t.Fatalf("register %s: %d %s", email, r.Status, r.Raw)
	}
	r2 := in.Do(t, "POST", "/v1/sessions", "", `{"email":"`+email+`","password":"correct horse battery"}`)
	if r2.Status != http.StatusOK {
		t.Fatalf("login %s: %d %s", email, r2.Status, r2.Raw)
	}
	return int64(r.Body["id"].(float64)), r2.Body["token"].(string)
}
