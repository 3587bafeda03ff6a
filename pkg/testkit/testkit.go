// Package testkit gives integration tests their own slice of the machine's
// real Postgres, Redis and NATS: a fresh database, a key prefix, an events
// namespace, each removed when the test ends, so tests run in parallel and
// never see each other's data. There are no fakes here: a test that needs
// Postgres fails when Postgres is down, it does not skip.
//
// The addresses default to the local services and can be overridden with
// TEST_POSTGRES_URL, TEST_REDIS_URL and TEST_NATS_URL.
package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/stampede-shop/stampede/pkg/cache"
	"github.com/stampede-shop/stampede/pkg/loopback"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// PostgresServer is the server tests create their databases on.
func PostgresServer() string {
	return env("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
}

// RedisURL is the Redis tests use.
func RedisURL() string { return env("TEST_REDIS_URL", "redis://127.0.0.1:6379/0") }

// NATSURL is the NATS tests use.
func NATSURL() string { return env("TEST_NATS_URL", "nats://127.0.0.1:4222") }

// Name returns a short random lower-case name with prefix, usable as a
// database name, key prefix or stream namespace.
func Name(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Database creates a fresh, empty database and returns its URL. It is dropped
// (connections and all) when the test ends.
func Database(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := Name("stampede_test_")
	conn, err := pgx.Connect(ctx, PostgresServer())
	if err != nil {
		t.Fatalf("testkit: Postgres at %s is required: %v", PostgresServer(), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testkit: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, PostgresServer())
		if err != nil {
			t.Errorf("testkit: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testkit: drop database %s: %v", name, err)
		}
	})
	return strings.Replace(PostgresServer(), "/postgres?", "/"+name+"?", 1)
}

// Redis returns a client and a key prefix of the test's own; every key under
// the prefix is deleted when the test ends.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	opts, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	rdb := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("testkit: Redis at %s is required: %v", RedisURL(), err)
	}
	prefix := Name("test:") + ":"
	t.Cleanup(func() {
		_ = cache.DeletePrefix(context.Background(), rdb, prefix)
		rdb.Close()
	})
	return rdb, prefix
}

// NATS returns a JetStream handle and a namespace of the test's own; streams
// created under the namespace are deleted when the test ends.
func NATS(t testing.TB) (jetstream.JetStream, string) {
	t.Helper()
	nc, err := nats.Connect(NATSURL(), nats.Timeout(3*time.Second))
	if err != nil {
		t.Fatalf("testkit: NATS at %s is required: %v", NATSURL(), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("testkit: jetstream: %v", err)
	}
	if err := keepStore(js); err != nil {
		t.Fatalf("testkit: %v", err)
	}
	ns := Name("t")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		names := js.StreamNames(ctx)
		for name := range names.Name() {
			if strings.HasPrefix(name, ns+"_") {
				_ = js.DeleteStream(ctx, name)
			}
		}
		nc.Close()
	})
	return js, ns
}

// KeepStreamStore makes sure the NATS server keeps its JetStream store
// directory while tests create and delete streams in parallel; a test main
// whose tests start services without NATS(t) calls it first.
//
// nats-server (2.9 here) removes an account's store directory when its last
// stream is deleted. A stream that another test package creates at that
// moment fails with "error creating store for stream" (could not create
// storage directory): packages run in parallel, and each deletes its streams
// when its tests end. One stream that is never deleted keeps the directory.
func KeepStreamStore() error {
	nc, err := nats.Connect(NATSURL(), nats.Timeout(3*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	return keepStore(js)
}

// kept is the outcome of keepStore's first call in this process: once the
// stream exists it stays, so later tests need not ask the server again.
var kept struct {
	once sync.Once
	err  error
}

func keepStore(js jetstream.JetStream) error {
	kept.once.Do(func() { kept.err = createKeepStream(js) })
	return kept.err
}

func createKeepStream(js jetstream.JetStream) error {
	cfg := jetstream.StreamConfig{Name: "TESTKIT_KEEP_STORE", Subjects: []string{"testkit.keep-store"},
		Storage: jetstream.FileStorage, MaxMsgs: 1, Description: "keeps the JetStream store directory; see testkit.KeepStreamStore"}
	var err error
	for range 5 { // its own creation can meet the race it prevents, once
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err = js.CreateOrUpdateStream(ctx, cfg)
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the stream that keeps JetStream's store: %w", err)
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago and that no other test in this binary was given, for a service under
// test to listen on (see package loopback).
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := loopback.FreeAddr()
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	return addr
}

// Getenv returns a getenv over m, for calling a service's run in-process.
func Getenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}
