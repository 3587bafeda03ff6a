package replay

import (
	"testing"

	"github.com/stampede-shop/stampede/pkg/fixes"
)

func TestParseProfile(t *testing.T) {
	tests := []struct {
		name, fixes string
		has, hasNot fixes.Name
	}{
		{"naive", "naive", "", fixes.HotRow},
		{"resilient", "resilient", fixes.HotRow, ""},
		{"naive+hot_row", "naive,+hot_row", fixes.HotRow, fixes.Shedding},
		{"resilient-shedding", "resilient,-shedding", fixes.HotRow, fixes.Shedding},
		{"naive+hot_row+outbox", "naive,+hot_row,+outbox", fixes.Outbox, fixes.Breaker},
	}
	for _, tt := range tests {
		p, err := ParseProfile(tt.name)
		if err != nil || p.Fixes != tt.fixes {
			t.Fatalf("%s: %+v %v, want fixes %q", tt.name, p, err, tt.fixes)
		}
		if tt.has != "" && !p.Has(tt.has) || tt.hasNot != "" && p.Has(tt.hasNot) {
			t.Fatalf("%s: fixes wrong: %s", tt.name, p.Fixes)
		}
	}
	for _, bad := range []string{"", "naïve", "naive+nope", "resilient-", "fast"} {
		if _, err := ParseProfile(bad); err == nil {
			t.Fatalf("%q: accepted", bad)
		}
	}
	if n := len(Ablations()); n != 2*len(fixes.All) {
		t.Fatalf("%d ablations, want %d", n, 2*len(fixes.All))
	}
}
