package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/fixes"
	"github.com/stampede-shop/stampede/pkg/logging"
	"github.com/stampede-shop/stampede/pkg/telemetry"
	"github.com/stampede-shop/stampede/pkg/web"
)

// RequestID honours a sane X-Request-ID from the caller (the gateway sets one)
// or makes one, echoes it, and puts it in the request context for logs and
// error bodies.
func RequestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader("X-Request-ID")
		if !saneID(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Header("X-Request-ID", id)
		c.Request = c.Request.WithContext(logging.WithRequestID(c.Request.Context(), id))
		c.Next()
	}
}

// saneID accepts up to 128 printable ASCII characters, so a caller cannot
// inject log lines or megabytes through the header.
func saneID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// AccessLog writes one line per request: server errors at error level,
// client errors at info, the rest at debug (so production logs stay quiet).
// Refusals — a 429 or 503 that carries Retry-After — are at debug too: they
// are the service protecting itself, they are counted in metrics, and a
// line each would add work exactly when there is none to spare (shedding a
// thousand requests a second must not mean writing a thousand log lines).
func AccessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		status := c.Writer.Status()
		level := slog.LevelDebug // successes, refusals and conflicts: the metrics count them
		switch telemetry.OutcomeOf(status, c.Writer.Header()) {
		case telemetry.ServerError:
			level = slog.LevelError
		case telemetry.ClientError:
			// A conflict — sold out, an email taken, a retry while the first
			// attempt runs — is the shop's state answering, not a client's
			// mistake; in a flash sale it is thousands of answers a second.
			if status != http.StatusConflict {
				level = slog.LevelInfo
			}
		}
		if !log.Enabled(c.Request.Context(), level) {
			return // before the arguments below are made: each one is an allocation
		}
		log.Log(c.Request.Context(), level, "request",
			"method", c.Request.Method,
			"route", c.FullPath(),
			"path", c.Request.URL.Path,
			"status", status,
			"duration_ms", float64(time.Since(start).Microseconds())/1000,
			"bytes", c.Writer.Size(),
		)
	}
}

// Recover turns a panic in a handler into a JSON 500, with the stack in the
// log. Without the fix the panic travels on to net/http, which logs it in
// plain text and drops the connection: the client sees a reset, not an answer.
func Recover(log *slog.Logger, board *fixes.Board) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !board.On(fixes.Recovery) {
			c.Next()
			return
		}
		// fix: recovery — a panicking request answers 500 and the process lives on.
		defer func() {
			if p := recover(); p != nil {
				if err, ok := p.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(p) // the deliberate way to abort a response; not ours to swallow
				}
				log.ErrorContext(c.Request.Context(), "panic recovered", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				web.Abort(c, log, web.NewError(http.StatusInternalServerError, "internal", "internal error"))
			}
		}()
		c.Next()
	}
}

// BodyLimit caps request bodies. A declared Content-Length over the cap is
// refused before a byte is read; a body that lies about its length is cut off
// by http.MaxBytesReader, and the decoder turns that into the same 413.
func BodyLimit(limit int64, log *slog.Logger, board *fixes.Board) gin.HandlerFunc {
	tooLarge := web.NewError(http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the request body is over %d bytes", limit))
	return func(c *gin.Context) {
		if !board.On(fixes.BodyLimit) {
			c.Next()
			return
		}
		// fix: body_limit — no request can make us read more than limit bytes.
		if c.Request.ContentLength > limit {
			c.Header("Connection", "close")
			web.Abort(c, log, tooLarge)
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
		c.Next()
	}
}
