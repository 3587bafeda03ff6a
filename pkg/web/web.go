// Package web is the HTTP edge every service shares: the JSON error shape of
// DESIGN.md, JSON decoding with validation, the Retry-After header written
// and read, and nothing else. Handlers return errors; Abort turns any error
// into the one shape clients see:
//
//	{"error":{"code":"sold_out","message":"...","request_id":"..."}}
package web

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/logging"
)

// Error is an error a client is meant to see.
type Error struct {
	Status  int               `json:"-"`
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"` // validation problems, by field
	// RetryAfter, when set, becomes the Retry-After header: the client is told
	// when trying again is worth it instead of guessing.
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// NewError returns a client error.
func NewError(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// Overload is implemented by errors that mean "not now, try again soon":
// an exhausted pool, an open breaker, a shed request. Abort answers them with
// 503 and Retry-After, whatever package they come from.
type Overload interface {
	error
	Code() string
	RetryAfter() time.Duration
}

// body is the JSON envelope.
type body struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	*Error
	RequestID string `json:"request_id,omitempty"`
}

// Abort writes err in the JSON error shape and stops the handler chain.
// Errors that are not a *Error or an Overload are internal: the client gets a
// generic 500 and the cause goes to the log, once, here.
func Abort(c *gin.Context, log *slog.Logger, err error) {
	ctx := c.Request.Context()
	var we *Error
	var ol Overload
	switch {
	case errors.As(err, &we):
	case errors.As(err, &ol):
		we = &Error{Status: http.StatusServiceUnavailable, Code: ol.Code(), Message: ol.Error(), RetryAfter: ol.RetryAfter()}
	case errors.Is(err, context.DeadlineExceeded):
		we = &Error{Status: http.StatusServiceUnavailable, Code: "timeout", Message: "the request took too long; try again", RetryAfter: time.Second}
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The client went away; nobody is left to read an answer.
		c.Abort()
		return
	default:
		log.ErrorContext(ctx, "internal error", "error", err, "route", c.FullPath())
		we = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
	}
	if we.RetryAfter > 0 {
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(we.RetryAfter.Seconds()))))
	}
	c.Set(codeKey, we.Code)
	c.AbortWithStatusJSON(we.Status, body{Error: errorBody{Error: we, RequestID: logging.RequestID(ctx)}})
}

// codeKey is where Abort leaves the code it answered with, for Code.
const codeKey = "web.error_code"

// Code is the error code Abort answered c with ("" if it did not): what the
// metrics label a refusal with, since a shed at the door and a pool's
// timeout are both a 503 with Retry-After.
func Code(c *gin.Context) string { return c.GetString(codeKey) }

// RetryAfter reads an answer's Retry-After header, in either form RFC 9110
// allows (seconds, or an HTTP date), and caps it at most: how long a client
// should wait before asking again. It is 0 when the header is missing,
// malformed or already past: nothing says to wait.
func RetryAfter(h http.Header, most time.Duration) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(min(secs, int(most/time.Second)+1)) * time.Second // min: no overflow
	} else if at, err := http.ParseTime(v); err == nil {
		d = time.Until(at)
	}
	return max(0, min(d, most))
}

// Common client errors, shared so that every service words them alike.
var (
	ErrUnauthorized = NewError(http.StatusUnauthorized, "unauthorized", "a valid bearer token is required")
	ErrNotFound     = NewError(http.StatusNotFound, "not_found", "not found")
)

// Invalid is a 400 listing the problems by field.
func Invalid(problems map[string]string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid", Message: "the request is not valid", Fields: problems}
}
