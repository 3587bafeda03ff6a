package auth_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stampede-shop/stampede/pkg/auth"
)

const secret = "0123456789abcdef0123456789abcdef"

func TestIssueAndVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tokens := auth.NewTokens(secret, time.Hour).WithClock(func() time.Time { return now })
	tok, exp, err := tokens.Issue(42)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("expires %v", exp)
	}
	id, err := tokens.Verify(tok)
	if err != nil || id != 42 {
		t.Fatalf("Verify: %d %v", id, err)
	}

	later := tokens.WithClock(func() time.Time { return now.Add(time.Hour + time.Second) })
	otherKey := auth.NewTokens("another-secret-another-secret-xx", time.Hour).WithClock(func() time.Time { return now })
	parts := strings.Split(tok, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"stampede-user","sub":"1","exp":9999999999}`)) + "." + parts[2]
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.RegisteredClaims{Issuer: "stampede-user", Subject: "42",
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour))}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Issuer: "stampede-user", Subject: "42"}).SignedString([]byte(secret))

	for name, tc := range map[string]struct {
		tokens *auth.Tokens
		token  string
	}{
		"expired":        {later, tok},
		"other key":      {otherKey, tok},
		"tampered claim": {tokens, tampered},
		"alg none":       {tokens, none},
		"no expiry":      {tokens, noExp},
		"garbage":        {tokens, "not.a.token"},
		"empty":          {tokens, ""},
	} {
		if _, err := tc.tokens.Verify(tc.token); !errors.Is(err, auth.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}
