package account_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stampede-shop/stampede/services/user/account"
)

func TestRegistrationValid(t *testing.T) {
	ok := account.Registration{Email: "ann@example.com", Password: "correct horse", Name: "Ann"}
	tests := []struct {
		name  string
		edit  func(r *account.Registration)
		field string // "" = valid
	}{
		{"valid", func(*account.Registration) {}, ""},
		{"email with spaces and capitals", func(r *account.Registration) { r.Email = "  Ann@Example.COM " }, ""},
		{"unicode name", func(r *account.Registration) { r.Name = "Zoë Ångström" }, ""},
		{"no email", func(r *account.Registration) { r.Email = "" }, "email"},
		{"not an email", func(r *account.Registration) { r.Email = "ann" }, "email"},
		{"display name form", func(r *account.Registration) { r.Email = "Ann <ann@example.com>" }, "email"},
		{"no dot in domain", func(r *account.Registration) { r.Email = "ann@localhost" }, "email"},
		{"email too long", func(r *account.Registration) { r.Email = strings.Repeat("a", 250) + "@x.io" }, "email"},
		{"short password", func(r *account.Registration) { r.Password = "123456789" }, "password"},
		{"password over bcrypt limit", func(r *account.Registration) { r.Password = strings.Repeat("p", 73) }, "password"},
		{"password is the email", func(r *account.Registration) { r.Email = "ann@example.com"; r.Password = "ANN@example.com" }, "password"},
		{"blank name", func(r *account.Registration) { r.Name = "   " }, "name"},
		{"long name", func(r *account.Registration) { r.Name = strings.Repeat("n", 101) }, "name"},
		{"control character in name", func(r *account.Registration) { r.Name = "Ann\x00" }, "name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok
			tt.edit(&r)
			problems := r.Valid(context.Background())
			if tt.field == "" {
				if len(problems) != 0 {
					t.Fatalf("want valid, got %v", problems)
				}
				return
			}
			if _, found := problems[tt.field]; !found || len(problems) != 1 {
				t.Fatalf("want exactly a problem with %s, got %v", tt.field, problems)
			}
		})
	}
}

func TestNormalizeEmail(t *testing.T) {
	if got := account.NormalizeEmail("  Ann@Example.COM\t"); got != "ann@example.com" {
		t.Fatalf("got %q", got)
	}
}

func TestCredentialsValid(t *testing.T) {
	if p := (account.Credentials{Email: "a@b.co", Password: "x"}).Valid(context.Background()); len(p) != 0 {
		t.Fatalf("presence is all a login checks: %v", p)
	}
	p := (account.Credentials{Email: " ", Password: ""}).Valid(context.Background())
	if p["email"] == "" || p["password"] == "" {
		t.Fatalf("got %v", p)
	}
}
