package fixes

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/web"
)

// view is the JSON of GET and PUT /admin/fixes.
type view struct {
	Fixes   string        `json:"fixes"`
	Enabled map[Name]bool `json:"enabled"`
}

// change is the body of PUT /admin/fixes: a FIXES value, such as
// {"fixes":"naive"} or {"fixes":"resilient,-breaker"}.
type change struct {
	Fixes *string `json:"fixes"`
}

func (c change) Valid(context.Context) map[string]string {
	if c.Fixes == nil {
		return map[string]string{"fixes": "is required, e.g. \"resilient\" or \"naive,+timeouts\""}
	}
	return nil
}

// HandleGet serves GET /admin/fixes.
func (b *Board) HandleGet(c *gin.Context) {
	s := b.Current()
	c.JSON(http.StatusOK, view{Fixes: s.String(), Enabled: s.Map()})
}

// HandlePut serves PUT /admin/fixes. The caller is already authenticated by
// the admin listener; who names them in the log line.
func (b *Board) HandlePut(who func(*gin.Context) string) gin.HandlerFunc {
	return func(c *gin.Context) {
		req, err := web.Decode[change](c)
		if err != nil {
			web.Abort(c, b.log, err)
			return
		}
		s, err := Parse(*req.Fixes)
		if err != nil {
			web.Abort(c, b.log, web.Invalid(map[string]string{"fixes": err.Error()}))
			return
		}
		b.Replace(s, who(c))
		b.HandleGet(c)
	}
}
