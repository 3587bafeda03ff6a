// Package auth issues and verifies the session tokens (JWT, HS256) that the
// user service hands out and every service accepts as a Bearer token.
package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"

	"github.com/stampede-shop/stampede/pkg/web"
)

const issuer = "stampede-user"

// DevSecret is the development default of JWT_SECRET, shared by the services
// so that `make dev` works out of the box. Production refuses it.
const DevSecret = "dev-only-jwt-secret-change-me" //nolint:gosec // G101: a development placeholder, refused in production

// Tokens issues and verifies tokens with one shared secret.
type Tokens struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

// NewTokens returns Tokens signing with secret, valid for ttl.
func NewTokens(secret string, ttl time.Duration) *Tokens {
	return &Tokens{secret: []byte(secret), ttl: ttl, now: time.Now}
}

// WithClock returns a copy that reads time from now (tests).
func (t *Tokens) WithClock(now func() time.Time) *Tokens {
	c := *t
	c.now = now
	return &c
}

// Issue returns a signed token for userID and when it expires.
func (t *Tokens) Issue(userID int64) (string, time.Time, error) {
	now := t.now()
	exp := now.Add(t.ttl).Truncate(time.Second)
	claims := jwt.RegisteredClaims{
		Issuer:    issuer,
		Subject:   strconv.FormatInt(userID, 10),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("auth: sign: %w", err)
	}
	return s, exp, nil
}

// ErrInvalid is any reason a token is refused; the reasons are not told apart
// to clients.
var ErrInvalid = errors.New("auth: invalid token")

// Verify returns the user id of a valid token.
func (t *Tokens) Verify(token string) (int64, error) {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return t.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), // no "alg":"none", no key confusion
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(t.now),
	)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	id, err := strconv.ParseInt(claims.Subject, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: bad subject", ErrInvalid)
	}
	return id, nil
}

const userIDKey = "auth.user_id"

// Require is Gin middleware that lets through only requests with a valid
// Bearer token and records the caller's user id for UserID.
func (t *Tokens) Require(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		raw, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
		if !ok {
			web.Abort(c, log, web.ErrUnauthorized)
			return
		}
		id, err := t.Verify(strings.TrimSpace(raw))
		if err != nil {
			log.DebugContext(c.Request.Context(), "token refused", "error", err)
			web.Abort(c, log, web.ErrUnauthorized)
			return
		}
		c.Set(userIDKey, id)
		c.Next()
	}
}

// UserID returns the caller's id set by Require.
func UserID(c *gin.Context) int64 { return c.GetInt64(userIDKey) }
