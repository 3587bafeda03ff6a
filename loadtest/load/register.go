package load

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stampede-shop/stampede/pkg/web"
)

// Register creates n shoppers (SignUp), then has each place and read back
// one order (FirstOrders), so that every shopper has an order to read and
// the order service has a cached copy of it.
func (s *Shop) Register(ctx context.Context, n int) error {
	if err := s.SignUp(ctx, n); err != nil {
		return err
	}
	return s.FirstOrders(ctx)
}

// SignUp creates n shoppers through the user service, registration and
// login as real users do: each has an id and a session token, and the
// order service has not heard of any of them yet.
func (s *Shop) SignUp(ctx context.Context, n int) error {
	s.Shoppers = make([]*Shopper, n)
	var tag [4]byte
	_, _ = crand.Read(tag[:]) // a shop that runs already keeps the shoppers of earlier runs

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4) // bcrypt: a few at a time
	for i := range n {
		g.Go(func() error {
			w := &Shopper{Email: fmt.Sprintf("shopper%03d-%x@replay.example", i, tag), Password: "replay-password-1",
				IP: fmt.Sprintf("10.77.%d.%d", i/250, i%250+1)}
			var user struct{ ID int64 }
			if err := s.call(gctx, w, http.MethodPost, s.Targets.User+"/v1/users", map[string]string{
				"email": w.Email, "password": w.Password, "name": fmt.Sprintf("Shopper %d", i)}, http.StatusCreated, &user); err != nil {
				return err
			}
			var session struct{ Token string }
			if err := s.call(gctx, w, http.MethodPost, s.Targets.User+"/v1/sessions", map[string]string{
				"email": w.Email, "password": w.Password}, http.StatusOK, &session); err != nil {
				return err
			}
			w.ID, w.Token = user.ID, session.Token
			s.Shoppers[i] = w
			return nil
		})
	}
	return g.Wait()
}

// FirstOrders has every shopper place one order, for a product of its own,
// and read it back.
func (s *Shop) FirstOrders(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	// A few at a time, as the sign-ups: all at once, a resilient shop's shedder,
	// which starts from a small limit, refuses some, and their Retry-After
	// cost seconds of every shop's start.
	g.SetLimit(4)
	for i, w := range s.Shoppers {
		g.Go(func() error {
			o := Order{UserID: w.ID, ProductID: int64(100 + i), Quantity: 1}
			var created struct{ ID string }
			req := map[string]any{"items": []map[string]any{{"product_id": o.ProductID, "quantity": 1}}}
			if err := s.call(gctx, w, http.MethodPost, s.Targets.Order+"/v1/orders", req, http.StatusCreated, &created); err != nil {
				return err
			}
			o.ID = created.ID
			s.ack(w, o)
			return s.call(gctx, w, http.MethodGet, s.Targets.Order+"/v1/orders/"+o.ID, nil, http.StatusOK, nil)
		})
	}
	return g.Wait()
}

// call makes one set-up request as shopper w and decodes the answer into
// out. Like a well-behaved client it takes 429, 503 and a 409
// request_in_progress as "later": it waits, backing off with jitter and at
// least as long as Retry-After says, and asks again with the same
// idempotency key. (The 409 is the answer to that retry when the first
// attempt failed and the service could not release its key: on a slow
// machine a set-up order once got it, and the whole run stopped there.)
func (s *Shop) call(ctx context.Context, w *Shopper, method, url string, body any, want int, out any) error {
	key := s.newKey()
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := s.callOnce(ctx, w, method, url, key, body, want, out)
		var later *laterError
		if !errors.As(err, &later) || attempt == 30 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(max(wait/2+rand.N(wait), later.retryAfter)):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// laterError is an answer that means "come back later", after retryAfter
// if the service said when.
type laterError struct {
	status     int
	retryAfter time.Duration
}

func (e *laterError) Error() string { return fmt.Sprintf("status %d", e.status) }

func (s *Shop) callOnce(ctx context.Context, w *Shopper, method, url, key string, body any, want int, out any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", w.IP)
	if w.Token != "" {
		req.Header.Set("Authorization", "Bearer "+w.Token)
	}
	if method == http.MethodPost && w.Token != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch class, _, _ := classify(resp.StatusCode, data); class {
	case Limited, Shed, Unavailable, InProgress:
		return &laterError{resp.StatusCode, web.RetryAfter(resp.Header, 5*time.Second)}
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
