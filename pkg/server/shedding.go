package server

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/stampede-shop/stampede/pkg/config"
	"github.com/stampede-shop/stampede/pkg/resilience"
	"github.com/stampede-shop/stampede/pkg/web"
)

// shedding is the JSON of GET and PUT /admin/shedding: the shedder's CPU-wait
// target, as SHED_TARGET_CPU_WAIT sets it at start ("10ms", or "off").
type shedding struct {
	CPUWait *string `json:"cpu_wait"`
}

func (s shedding) Valid(context.Context) map[string]string {
	if s.CPUWait == nil {
		return map[string]string{"cpu_wait": `is required, e.g. "10ms" or "off"`}
	}
	if _, err := config.ParseDurationOrOff(*s.CPUWait); err != nil {
		return map[string]string{"cpu_wait": err.Error()}
	}
	return nil
}

func sheddingView(sh *resilience.Shedder) shedding {
	v := config.FormatDurationOrOff(sh.CPUWait())
	return shedding{CPUWait: &v}
}

// handleSheddingGet serves GET /admin/shedding.
func handleSheddingGet(sh *resilience.Shedder) gin.HandlerFunc {
	return func(c *gin.Context) { c.JSON(http.StatusOK, sheddingView(sh)) }
}

// handleSheddingPut serves PUT /admin/shedding: the CPU cap switched or
// retuned on a running service, as the fixes are through /admin/fixes. The
// replay switches it off on a running shop while it measures the capacity.
func handleSheddingPut(sh *resilience.Shedder, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		req, err := web.Decode[shedding](c)
		if err != nil {
			web.Abort(c, log, err)
			return
		}
		d, _ := config.ParseDurationOrOff(*req.CPUWait) // Valid has parsed it
		if was := sh.CPUWait(); was != d {
			sh.SetCPUWait(d)
			log.InfoContext(c.Request.Context(), "shedder's CPU-wait target changed", "from", config.FormatDurationOrOff(was),
				"to", config.FormatDurationOrOff(d), "by", "admin-api from "+c.ClientIP())
		}
		c.JSON(http.StatusOK, sheddingView(sh))
	}
}
