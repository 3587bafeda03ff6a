package resilience

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/web"
)

// KeyFunc names the client a request is counted against.
type KeyFunc func(c *gin.Context) string

// ByClientIP keys by the client's IP. Gin believes X-Forwarded-For only from
// the trusted proxies the server was configured with (TRUSTED_PROXIES), so a
// client cannot choose its own key.
func ByClientIP(scope string) KeyFunc {
	return func(c *gin.Context) string { return scope + ":ip:" + c.ClientIP() }
}

// ByUserID keys by the authenticated user, for routes behind authentication:
// a user is one client whichever device or address they come from.
func ByUserID(scope string, userID func(*gin.Context) int64) KeyFunc {
	return func(c *gin.Context) string { return scope + ":user:" + strconv.FormatInt(userID(c), 10) }
}

// RateLimit is Gin middleware that asks l before letting a request through.
// A refused request gets 429 in the JSON error shape with Retry-After; every
// answer carries the RateLimit-* headers of the IETF draft, so well-behaved
// clients can pace themselves. If the limiter fails, the request is let
// through: a broken limiter must not become an outage of its own.
func RateLimit(l Limiter, key KeyFunc, board *fixes.Board, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !board.On(fixes.RateLimit) {
			c.Next()
			return
		}
		// fix: rate_limit — each client gets its budget, no more.
		ctx := c.Request.Context()
		d, err := l.Allow(ctx, key(c))
		if err != nil {
			log.WarnContext(ctx, "rate limiter failed; request let through", "error", err)
			c.Next()
			return
		}
		h := c.Writer.Header()
		h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
		h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
		h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(d.Reset)))
		if !d.Allowed {
			web.Abort(c, log, &web.Error{
				Status:     http.StatusTooManyRequests,
				Code:       "rate_limited",
				Message:    "too many requests; slow down",
				RetryAfter: max(d.RetryAfter, time.Second),
			})
			return
		}
		c.Next()
	}
}

func ceilSeconds(d time.Duration) int { return int(math.Ceil(d.Seconds())) }

// CriticalityFunc tells a Shedder what refusing a request throws away.
type CriticalityFunc func(c *gin.Context) Criticality

// InternalIsCritical says that calls on routes under prefix are Critical and
// every other request Sheddable. The shop's services call each other only on
// /internal/ routes, which the gateway does not route: a shopper cannot reach
// them, so cannot claim a priority by choosing one. (Where clients can reach
// every route, the priority would come from a header the gateway sets and
// strips from what clients send.)
func InternalIsCritical(prefix string) CriticalityFunc {
	return func(c *gin.Context) Criticality {
		if strings.HasPrefix(c.Request.URL.Path, prefix) {
			return Critical
		}
		return Sheddable
	}
}

// Shed is Gin middleware that admits a request through sh or answers 503
// with Retry-After at once. Put it before anything that costs: the probes
// and the admin listener are outside it by construction (see package server).
func Shed(sh *Shedder, crit CriticalityFunc, board *fixes.Board, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !board.On(fixes.Shedding) {
			c.Next()
			return
		}
		// fix: shedding — excess work is refused at the door, not queued.
		ctx := withOutside(c.Request.Context())
		p, err := sh.Acquire(ctx, crit(c))
		if err != nil {
			web.Abort(c, log, err)
			return
		}
		defer p.Release()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}

// Deadline gives every request a context deadline, so that every database
// call and outbound request it makes gives up in time.
func Deadline(timeout time.Duration, board *fixes.Board) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !board.On(fixes.Timeouts) {
			c.Next()
			return
		}
		// fix: timeouts — a request can wait for nothing longer than this.
		ctx, cancel := context.WithTimeout(c.Request.Context(), timeout)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}
