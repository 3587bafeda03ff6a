package account

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/stampede-shop/stampede/pkg/auth"
	"github.com/stampede-shop/stampede/pkg/events"
)

// PointsConsumer is the durable consumer name under which the points for
// order.created events are recorded.
const PointsConsumer = "user-points"

// CentsPerPoint: one loyalty point per 100 cents spent.
const CentsPerPoint = 100

// Service holds the user service's use cases.
type Service struct {
	store  Store
	cache  ProfileCache
	tokens *auth.Tokens
	cost   int
	log    *slog.Logger
	// dummy is a hash of a random password, compared against when the email
	// is unknown, so that "no such user" costs the same bcrypt time as
	// "wrong password" and the two cannot be told apart by timing.
	dummy []byte
}

// NewService returns the use cases over store and cache. cost is bcrypt's.
func NewService(store Store, cache ProfileCache, tokens *auth.Tokens, cost int, log *slog.Logger) (*Service, error) {
	dummy, err := bcrypt.GenerateFromPassword([]byte("not-a-password-anyone-has"), cost)
	if err != nil {
		return nil, fmt.Errorf("account: bcrypt cost %d: %w", cost, err)
	}
	return &Service{store: store, cache: cache, tokens: tokens, cost: cost, log: log, dummy: dummy}, nil
}

// Register creates a user. The request must have passed Valid.
func (s *Service) Register(ctx context.Context, r Registration) (Profile, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), s.cost)
	if err != nil {
		return Profile{}, fmt.Errorf("account: hash password: %w", err)
	}
	u := &User{Email: NormalizeEmail(r.Email), Name: strings.TrimSpace(r.Name), PasswordHash: hash}
	if err := s.store.Create(ctx, u); err != nil {
		return Profile{}, err
	}
	return u.Profile(), nil
}

// Login checks credentials and issues a session. A wrong password and an
// unknown email both return ErrBadCredentials, after the same bcrypt work.
func (s *Service) Login(ctx context.Context, c Credentials) (Session, error) {
	email := NormalizeEmail(c.Email)
	var u *User
	err := ErrNotFound
	// An address that registration refuses names no account, so it is not
	// looked up: Postgres would answer one with a NUL byte with an error (a
	// 500), where the client deserves the answer every unknown email gets.
	if emailProblem(email) == "" {
		u, err = s.store.ByEmail(ctx, email)
	}
	hash := s.dummy
	switch {
	case err == nil:
		hash = u.PasswordHash
	case !errors.Is(err, ErrNotFound):
		return Session{}, err
	}
	if err := bcrypt.CompareHashAndPassword(hash, []byte(c.Password)); err != nil || u == nil {
		return Session{}, ErrBadCredentials
	}
	token, exp, err := s.tokens.Issue(u.ID)
	if err != nil {
		return Session{}, err
	}
	return Session{Token: token, ExpiresAt: exp}, nil
}

// Profile returns a user's profile, from the cache when it has it.
func (s *Service) Profile(ctx context.Context, id int64) (Profile, error) {
	p, found, ticket, err := s.cache.Get(ctx, id)
	if err != nil {
		s.log.WarnContext(ctx, "profile cache read failed; reading the database", "error", err)
	}
	if found {
		return p, nil
	}
	u, err := s.store.ByID(ctx, id)
	if err != nil {
		return Profile{}, err
	}
	p = u.Profile()
	if err := s.cache.Fill(ctx, p, ticket); err != nil {
		s.log.WarnContext(ctx, "profile cache write failed", "error", err)
	}
	return p, nil
}

// ApplyOrderCreated awards the points of an order, once per event. The
// profile cache entry is dropped after the commit so the next read sees the
// new balance. An event for a user this service does not know can never
// succeed, so it is reported as permanent rather than retried for ever.
func (s *Service) ApplyOrderCreated(ctx context.Context, ev events.OrderCreated) error {
	if ev.EventID == "" || ev.UserID <= 0 || ev.TotalCents < 0 {
		return fmt.Errorf("%w: malformed order.created event %q", events.ErrPermanent, ev.EventID)
	}
	applied, err := s.store.AwardPoints(ctx, PointsConsumer, ev.EventID, ev.UserID, ev.TotalCents/CentsPerPoint)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: event %s names unknown user %d", events.ErrPermanent, ev.EventID, ev.UserID)
	}
	if err != nil {
		return err
	}
	if !applied {
		s.log.InfoContext(ctx, "duplicate event ignored", "event_id", ev.EventID)
		return nil
	}
	if err := s.cache.Invalidate(ctx, ev.UserID); err != nil {
		// The entry expires on its own within its TTL; points show late, not wrong.
		s.log.WarnContext(ctx, "profile cache invalidation failed", "user_id", ev.UserID, "error", err)
	}
	return nil
}
