package stack

import (
	"testing"
	"time"
)

func TestFaultsNeedTheirProxy(t *testing.T) {
	var s Native // started without any proxy
	if err := s.PostgresDown(true); err == nil {
		t.Error("PostgresDown without a proxy to cut did not fail")
	}
	if err := s.SlowPostgres(time.Second); err == nil {
		t.Error("SlowPostgres without a proxy to slow did not fail")
	}
	if err := s.NATSDown(true); err == nil {
		t.Error("NATSDown without a proxy to cut did not fail")
	}
	if err := s.RedisDown(true); err == nil {
		t.Error("RedisDown without a proxy to silence did not fail")
	}
	if err := s.SlowUsers(time.Second); err == nil {
		t.Error("SlowUsers without a proxy to slow did not fail")
	}
}

// freeAddr never hands out a port twice: a stack asks for six before its
// services bind any, and one port given to two services left the second
// unable to listen ("address already in use"), restarted in a loop.
func TestFreeAddrNeverRepeatsAPort(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 { // among 12,000 ports, random picks would repeat some hundred times
		addr := freeAddr()
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
	}
}
