// Package account is the user service's domain: users, their credentials and
// loyalty points, and the use cases on them. It knows nothing of HTTP,
// Postgres or Redis; those adapt to the interfaces declared here.
package account

import (
	"context"
	"errors"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// User is a registered customer.
type User struct {
	ID           int64
	Email        string
	Name         string
	PasswordHash []byte
	Points       int64
	CreatedAt    time.Time
}

// Profile is what a user, or another service, may see of a user.
type Profile struct {
	ID     int64  `json:"id"`
	Email  string `json:"email"`
	Name   string `json:"name"`
	Points int64  `json:"points"`
}

// Profile returns u's public view.
func (u *User) Profile() Profile {
	return Profile{ID: u.ID, Email: u.Email, Name: u.Name, Points: u.Points}
}

// Session is a signed-in user's bearer token.
type Session struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Errors of the domain; the HTTP edge maps them to statuses in one place.
var (
	ErrEmailTaken     = errors.New("account: email already registered")
	ErrNotFound       = errors.New("account: user not found")
	ErrBadCredentials = errors.New("account: wrong email or password")
)

// Store keeps users. Implementations return ErrEmailTaken and ErrNotFound.
type Store interface {
	Create(ctx context.Context, u *User) error // sets u.ID and u.CreatedAt
	ByEmail(ctx context.Context, email string) (*User, error)
	ByID(ctx context.Context, id int64) (*User, error)
	// AwardPoints adds points to a user once per event id, recording the id
	// in the same transaction; applied is false for an event seen before.
	AwardPoints(ctx context.Context, consumer, eventID string, userID, points int64) (applied bool, err error)
}

// ProfileCache keeps profiles close at hand. It is an optimisation: every
// method may fail, and the service then goes to the Store.
//
// A miss hands out a ticket; Fill with it stores the profile loaded from the
// Store only if no Invalidate came in between, so a slow reader can never put
// back a profile older than the last write.
type ProfileCache interface {
	Get(ctx context.Context, id int64) (p Profile, found bool, ticket string, err error)
	Fill(ctx context.Context, p Profile, ticket string) error
	Invalidate(ctx context.Context, id int64) error
}

// Password rules: long enough to resist guessing, short enough for bcrypt,
// which silently ignores everything past 72 bytes.
const (
	MinPasswordLen   = 10
	MaxPasswordBytes = 72
	maxEmailLen      = 254 // RFC 5321 path limit
	maxNameLen       = 100
)

// Registration is the body of POST /v1/users.
type Registration struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

// NormalizeEmail trims and lower-cases an address, so that "Ann@Example.com "
// and "ann@example.com" are one account.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// Valid reports the problems of r by field.
func (r Registration) Valid(context.Context) map[string]string {
	problems := map[string]string{}
	if p := emailProblem(NormalizeEmail(r.Email)); p != "" {
		problems["email"] = p
	}
	switch n := utf8.RuneCountInString(r.Password); {
	case n < MinPasswordLen:
		problems["password"] = "must be at least 10 characters"
	case len(r.Password) > MaxPasswordBytes:
		problems["password"] = "must be at most 72 bytes"
	case strings.EqualFold(r.Password, strings.TrimSpace(r.Email)):
		problems["password"] = "must not be the email address"
	}
	name := strings.TrimSpace(r.Name)
	switch {
	case name == "":
		problems["name"] = "is required"
	case utf8.RuneCountInString(name) > maxNameLen:
		problems["name"] = "must be at most 100 characters"
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		problems["name"] = "must not contain control characters"
	}
	return problems
}

func emailProblem(email string) string {
	if email == "" {
		return "is required"
	}
	if len(email) > maxEmailLen {
		return "must be at most 254 characters"
	}
	// ParseAddress also accepts "Ann <ann@example.com>"; only a bare address
	// that parses back to itself is an email address here.
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return "must be an email address"
	}
	if _, domain, _ := strings.Cut(email, "@"); !strings.Contains(domain, ".") {
		return "must be an email address"
	}
	return ""
}

// Credentials is the body of POST /v1/sessions.
type Credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// Valid reports the problems of c by field. It checks presence only: saying
// more ("no such email") would tell an attacker which accounts exist.
func (c Credentials) Valid(context.Context) map[string]string {
	problems := map[string]string{}
	if strings.TrimSpace(c.Email) == "" {
		problems["email"] = "is required"
	}
	if c.Password == "" {
		problems["password"] = "is required"
	}
	if len(c.Password) > MaxPasswordBytes {
		problems["password"] = "must be at most 72 bytes"
	}
	return problems
}
