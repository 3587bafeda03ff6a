// Package postgres is the user service's account.Store on Postgres (GORM).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/stampede-shop/stampede/pkg/db"
	"github.com/stampede-shop/stampede/services/user/account"
)

// Store implements account.Store.
type Store struct{ db *db.DB }

// NewStore returns a Store over d.
func NewStore(d *db.DB) *Store { return &Store{db: d} }

var _ account.Store = (*Store)(nil)

// userRow is the users table; the domain type stays free of tags.
type userRow struct {
	ID           int64 `gorm:"primaryKey"`
	Email        string
	Name         string
	PasswordHash []byte
	Points       int64
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

func (userRow) TableName() string { return "users" }

func (r *userRow) user() *account.User {
	return &account.User{ID: r.ID, Email: r.Email, Name: r.Name, PasswordHash: r.PasswordHash, Points: r.Points, CreatedAt: r.CreatedAt}
}

// Create inserts u. The unique constraint on email decides duplicates, so two
// concurrent registrations of one address cannot both succeed.
func (s *Store) Create(ctx context.Context, u *account.User) error {
	row := userRow{Email: u.Email, Name: u.Name, PasswordHash: u.PasswordHash}
	err := s.db.Do(ctx, func(tx *gorm.DB) error { return tx.Create(&row).Error })
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return account.ErrEmailTaken
	}
	if err != nil {
		return fmt.Errorf("postgres: create user: %w", err)
	}
	u.ID, u.CreatedAt = row.ID, row.CreatedAt
	return nil
}

// ByEmail finds a user by normalised email.
func (s *Store) ByEmail(ctx context.Context, email string) (*account.User, error) {
	return s.first(ctx, "email = ?", email)
}

// ByID finds a user by id.
func (s *Store) ByID(ctx context.Context, id int64) (*account.User, error) {
	return s.first(ctx, "id = ?", id)
}

func (s *Store) first(ctx context.Context, where string, arg any) (*account.User, error) {
	var row userRow
	err := s.db.Do(ctx, func(tx *gorm.DB) error { return tx.Where(where, arg).Take(&row).Error })
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, account.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: find user: %w", err)
	}
	return row.user(), nil
}

// awardPointsSQL records the event and adds the points in one statement,
// which Postgres runs atomically: the event is recorded only for a user who
// exists (an event for an unknown one can be retried, or looked at, later),
// and the points added only if the event was new. A redelivery, even one
// running beside the first delivery, waits on the event's unique key and
// then changes nothing.
const awardPointsSQL = `WITH known AS (
		SELECT id FROM users WHERE id = @user_id
	), handled AS (
		INSERT INTO processed_events (consumer, event_id) SELECT @consumer, @event_id FROM known
		ON CONFLICT DO NOTHING RETURNING 1
	), awarded AS (
		UPDATE users SET points = points + @points, updated_at = now()
		WHERE id = @user_id AND EXISTS (SELECT FROM handled) RETURNING 1
	)
	SELECT EXISTS (SELECT FROM known) AS known, EXISTS (SELECT FROM awarded) AS applied`

// AwardPoints adds the points of an event once: one round trip, where a
// transaction of two statements took four.
func (s *Store) AwardPoints(ctx context.Context, consumer, eventID string, userID, points int64) (bool, error) {
	var row struct{ Known, Applied bool }
	err := s.db.Do(ctx, func(g *gorm.DB) error {
		return g.Raw(awardPointsSQL, map[string]any{"consumer": consumer, "event_id": eventID, "user_id": userID, "points": points}).Scan(&row).Error
	})
	switch {
	case err != nil:
		return false, fmt.Errorf("postgres: award points: %w", err)
	case !row.Known:
		return false, account.ErrNotFound
	}
	return row.Applied, nil
}
