package main

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/auth"
	"github.com/stampede-shop/stampede/pkg/web"
	"github.com/stampede-shop/stampede/services/user/account"
)

func handleRegister(log *slog.Logger, svc *account.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		req, err := web.Decode[account.Registration](c)
		if err != nil {
			fail(c, log, err)
			return
		}
		p, err := svc.Register(c.Request.Context(), req)
		if err != nil {
			fail(c, log, err)
			return
		}
		c.JSON(http.StatusCreated, p)
	}
}

func handleLogin(log *slog.Logger, svc *account.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		req, err := web.Decode[account.Credentials](c)
		if err != nil {
			fail(c, log, err)
			return
		}
		s, err := svc.Login(c.Request.Context(), req)
		if err != nil {
			fail(c, log, err)
			return
		}
		c.JSON(http.StatusOK, s)
	}
}

func handleMe(log *slog.Logger, svc *account.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, err := svc.Profile(c.Request.Context(), auth.UserID(c))
		if errors.Is(err, account.ErrNotFound) {
			err = web.ErrUnauthorized // a valid token for a user that is gone
		}
		if err != nil {
			fail(c, log, err)
			return
		}
		c.JSON(http.StatusOK, p)
	}
}

func handleGetUser(log *slog.Logger, svc *account.Service) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, err := strconv.ParseInt(c.Param("id"), 10, 64)
		if err != nil || id <= 0 {
			fail(c, log, web.Invalid(map[string]string{"id": "must be a positive integer"}))
			return
		}
		p, err := svc.Profile(c.Request.Context(), id)
		if err != nil {
			fail(c, log, err)
			return
		}
		c.JSON(http.StatusOK, p)
	}
}

// fail maps the domain's errors to the JSON error shape: the one place where
// this service decides what a client is told.
func fail(c *gin.Context, log *slog.Logger, err error) {
	switch {
	case errors.Is(err, account.ErrEmailTaken):
		err = web.NewError(http.StatusConflict, "email_taken", "an account with this email already exists")
	case errors.Is(err, account.ErrBadCredentials):
		err = web.NewError(http.StatusUnauthorized, "bad_credentials", "wrong email or password")
	case errors.Is(err, account.ErrNotFound):
		err = web.NewError(http.StatusNotFound, "not_found", "no such user")
	}
	web.Abort(c, log, err)
}
