package stack

import (
	"testing"
	"time"
)

func TestFaultsNeedTheirProxy(t *testing.T) {
	var s Native // started without ProxyPostgres and ProxyUsers
	if err := s.PostgresDown(true); err == nil {
		t.Error("PostgresDown without a proxy to cut did not fail")
	}
	if err := s.SlowUsers(time.Second); err == nil {
		t.Error("SlowUsers without a proxy to slow did not fail")
	}
}
