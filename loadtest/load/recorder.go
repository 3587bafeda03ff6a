package load

import (
	"slices"
	"sync"
	"time"

	"github.com/stampede-shop/stampede/loadtest/scenario"
)

// Class is what became of a request, as a client sees it.
type Class string

// The classes. Good answers are OK and SoldOut: telling a shopper that the
// hot SKU is gone is the right answer, served. Limited, Shed and Unavailable
// are refusals the service chose to make (fast, with Retry-After); the rest
// are failures it did not choose.
const (
	OK          Class = "ok"           // 2xx
	SoldOut     Class = "sold_out"     // 409 sold_out
	Late        Class = "late"         // a 2xx or sold_out that came after LateAfter
	Limited     Class = "limited"      // 429
	Shed        Class = "shed"         // 503 overloaded: refused at the door
	Unavailable Class = "unavailable"  // other 503: a deadline, a pool timeout, a breaker open (Result.Code tells)
	ServerError Class = "server_error" // 500 and other 5xx
	InProgress  Class = "in_progress"  // 409 request_in_progress: a retry found the first attempt still running
	ClientError Class = "client_error" // another 4xx: a broken contract or a generator bug
	Timeout     Class = "timeout"      // no answer within the client's timeout
	Refused     Class = "refused"      // no connection: the process is down or restarting
)

// Classes lists every class in a fixed order (tables and charts use it).
var Classes = []Class{OK, SoldOut, Late, Limited, Shed, Unavailable, ServerError, InProgress, ClientError, Timeout, Refused}

// LateAfter is how long a shopper waits for a page before giving up on it:
// a right answer after that is not good service, and does not count as
// goodput (goodput is the work done within the objective, not all the work
// done). One second is the limit for a user's flow of thought not to break
// (Nielsen), and the same second that makes a refusal "fast" for OrderAPIDown.
const LateAfter = time.Second

// Good reports whether c is a served answer.
func (c Class) Good() bool { return c == OK || c == SoldOut }

// Refusal reports whether c is a refusal the service chose to make.
func (c Class) Refusal() bool { return c == Limited || c == Shed || c == Unavailable }

// Result is one request's outcome.
type Result struct {
	Due     time.Duration // offset from the start of the run when it was due
	Kind    scenario.Kind
	Class   Class
	Latency time.Duration // from Due to the answer (or the give-up)
	// Lag is how long after Due the request left: the shoppers' own wait
	// for a CPU (the generator's clock, the goroutine sending it). A shopper
	// with a machine of their own would not have it; here it is part of
	// Latency, as it must be in an open model.
	Lag   time.Duration
	Stale bool   // served from a fallback copy
	Retry bool   // a shopper's second or later attempt
	Code  string // the error code of an answer in the JSON error shape ("timeout", "pool_timeout"…)
}

// Second is what the recorder knows about one second of a run.
type Second struct {
	Offered    int
	ByClass    map[Class]int
	ByKind     map[scenario.Kind]int
	GoodByKind map[scenario.Kind]int // the good answers of each kind
	Stale      int
	Retries    int
	good       []float32 // latencies of good answers, ms
	refusals   []float32 // latencies of refusals, ms
	sent       []float32 // latencies of refusals from when they were sent (Latency - Lag), ms
	lags       []float32 // every request's Lag, ms
	orders     int       // requests to the order API
	ordersOK   int       // requests to the order API answered well
	ordersUp   int       // ... answered well, or refused within a second
	// Unavailable counts the Unavailable answers by their error code: the
	// class lumps together every 503 but the door's, and the code says
	// which it was (a request's deadline, a pool, a breaker, a bulkhead).
	Unavailable map[string]int
}

// OrderAPI reports whether k is a request to the order service.
func OrderAPI(k scenario.Kind) bool {
	return k == scenario.OrderHot || k == scenario.OrderOther || k == scenario.ReadOrder
}

// Recorder collects results by the second they were due in. Latencies are
// kept whole (a few hundred thousand float32s for a long run), so the
// percentiles are exact rather than approximated by a histogram's buckets.
type Recorder struct {
	mu      sync.Mutex
	seconds []*Second
}

// Add records one result.
func (r *Recorder) Add(res Result) {
	i := int(res.Due / time.Second)
	ms, lag := float32(res.Latency.Seconds()*1000), float32(res.Lag.Seconds()*1000)
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.seconds) <= i {
		r.seconds = append(r.seconds, &Second{ByClass: map[Class]int{}, ByKind: map[scenario.Kind]int{}, GoodByKind: map[scenario.Kind]int{},
			Unavailable: map[string]int{}})
	}
	s := r.seconds[i]
	s.Offered++
	s.ByClass[res.Class]++
	s.ByKind[res.Kind]++
	if res.Stale {
		s.Stale++
	}
	if res.Retry {
		s.Retries++
	}
	if res.Class == Unavailable {
		s.Unavailable[res.Code]++
	}
	s.lags = append(s.lags, lag)
	switch {
	case res.Class.Good():
		s.good = append(s.good, ms)
		s.GoodByKind[res.Kind]++
	case res.Class.Refusal():
		s.refusals = append(s.refusals, ms)
		s.sent = append(s.sent, ms-lag)
	}
	if OrderAPI(res.Kind) {
		s.orders++
		if res.Class.Good() {
			s.ordersOK++
		}
		if res.Class.Good() || res.Class.Refusal() && res.Latency <= LateAfter {
			s.ordersUp++
		}
	}
}

// Window sums the seconds [from, to).
func (r *Recorder) Window(from, to time.Duration) Totals {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := Totals{ByClass: map[Class]int{}, ByKind: map[scenario.Kind]int{}, GoodByKind: map[scenario.Kind]int{},
		Unavailable: map[string]int{}, Seconds: (to - from).Seconds()}
	for i := int(from / time.Second); i < int(to/time.Second) && i < len(r.seconds); i++ {
		s := r.seconds[i]
		t.Offered += s.Offered
		t.Stale += s.Stale
		t.Retries += s.Retries
		t.Orders += s.orders
		t.OrdersOK += s.ordersOK
		t.OrdersUp += s.ordersUp
		addCounts(t.ByClass, s.ByClass)
		addCounts(t.ByKind, s.ByKind)
		addCounts(t.GoodByKind, s.GoodByKind)
		addCounts(t.Unavailable, s.Unavailable)
		t.good = append(t.good, s.good...)
		t.refusals = append(t.refusals, s.refusals...)
		t.sent = append(t.sent, s.sent...)
		t.lags = append(t.lags, s.lags...)
	}
	return t
}

// addCounts adds the counts in from to those in into.
func addCounts[K comparable](into, from map[K]int) {
	for k, n := range from {
		into[k] += n
	}
}

// Each calls f with every recorded second, in order.
func (r *Recorder) Each(f func(i int, s Totals)) {
	n := r.Len()
	for i := range n {
		f(i, r.Window(time.Duration(i)*time.Second, time.Duration(i+1)*time.Second))
	}
}

// Len is the number of seconds recorded.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seconds)
}

// Totals are the sums over a window of seconds.
type Totals struct {
	Seconds          float64
	Offered          int
	ByClass          map[Class]int
	ByKind           map[scenario.Kind]int // requests offered, by kind
	GoodByKind       map[scenario.Kind]int // good answers, by kind
	Unavailable      map[string]int        // Unavailable answers, by error code
	Stale            int
	Retries          int
	Orders, OrdersOK int
	OrdersUp         int
	good, refusals   []float32
	sent, lags       []float32
}

// OrderHealth is the fraction of the order API's requests answered well, or
// 1 if there were none.
func (t Totals) OrderHealth() float64 {
	if t.Orders == 0 {
		return 1
	}
	return float64(t.OrdersOK) / float64(t.Orders)
}

// OrderAPIDown reports whether the order API was down: fewer than half of
// its requests got a good answer or a fast refusal (within LateAfter). A
// service that refuses what it cannot serve, quickly and honestly, is up;
// one that hangs, times out or is not there is down.
func (t Totals) OrderAPIDown() bool {
	return t.Orders > 0 && float64(t.OrdersUp) < 0.5*float64(t.Orders)
}

// Good is the number of good answers.
func (t Totals) Good() int { return t.ByClass[OK] + t.ByClass[SoldOut] }

// Goodput is good answers per second.
func (t Totals) Goodput() float64 {
	if t.Seconds <= 0 {
		return 0
	}
	return float64(t.Good()) / t.Seconds
}

// OfferedRate is requests offered per second.
func (t Totals) OfferedRate() float64 {
	if t.Seconds <= 0 {
		return 0
	}
	return float64(t.Offered) / t.Seconds
}

// GoodP returns the q-quantile (0..1) of good answers' latency in ms.
func (t Totals) GoodP(q float64) float64 { return quantile(t.good, q) }

// RefusalP returns the q-quantile of refusals' latency in ms.
func (t Totals) RefusalP(q float64) float64 { return quantile(t.refusals, q) }

// RefusalSentP returns the q-quantile of refusals' latency in ms, timed
// from when each was sent rather than due: without the shoppers' own lag.
func (t Totals) RefusalSentP(q float64) float64 { return quantile(t.sent, q) }

// LagP returns the q-quantile of how late the requests were sent, in ms.
func (t Totals) LagP(q float64) float64 { return quantile(t.lags, q) }

// Refusals is the number of refusals (429/503 the services chose to send).
func (t Totals) Refusals() int { return len(t.refusals) }

// Share returns the fraction of offered requests in class c.
func (t Totals) Share(c Class) float64 {
	if t.Offered == 0 {
		return 0
	}
	return float64(t.ByClass[c]) / float64(t.Offered)
}

func quantile(xs []float32, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return float64(s[max(0, min(i, len(s)-1))])
}
