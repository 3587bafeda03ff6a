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

// AwardPoints records the event and adds the points in one transaction: both
// happen or neither does, so a redelivered event is recognised by its id and
// never counted twice.
func (s *Store) AwardPoints(ctx context.Context, consumer, eventID string, userID, points int64) (bool, error) {
	applied := false
	err := s.db.Tx(ctx, func(tx *gorm.DB) error {
		res := tx.Exec(`INSERT INTO processed_events (consumer, event_id) VALUES (?, ?) ON CONFLICT DO NOTHING`, consumer, eventID)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return nil // seen before
		}
		res = tx.Exec(`UPDATE users SET points = points + ?, updated_at = now() WHERE id = ?`, points, userID)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return account.ErrNotFound // rolls back the event record too
		}
		applied = true
		return nil
	})
	if errors.Is(err, account.ErrNotFound) {
		return false, err
	}
	if err != nil {
		return false, fmt.Errorf("postgres: award points: %w", err)
	}
	return applied, nil
}
