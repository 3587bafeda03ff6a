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
