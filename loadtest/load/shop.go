package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stampede-shop/stampede/loadtest/scenario"
	"github.com/stampede-shop/stampede/pkg/catalog"
	"github.com/stampede-shop/stampede/pkg/web"
)

// Targets are the base URLs of the three services' APIs.
type Targets struct {
	User, Search, Order string
}

// Shopper is one pre-registered user of the pool. Each has an address of its
// own, sent as X-Forwarded-For as a gateway would, so that the per-client
// limits see many clients, as they would in production.
type Shopper struct {
	ID       int64
	Email    string
	Password string
	Token    string
	IP       string

	mu     sync.Mutex
	orders []string // acknowledged orders, to read back
}

// Order is an order the shop acknowledged with 201.
type Order struct {
	ID        string
	UserID    int64
	ProductID int64
	Quantity  int
}

// Shop sends the traffic mix's requests to the services and keeps the
// ledger of acknowledged orders the invariants are checked against.
type Shop struct {
	Targets  Targets
	Client   *http.Client
	Timeout  time.Duration // the client's patience; then the request is a Timeout
	Retries  int           // how many times a shopper tries again after a failure
	Shoppers []*Shopper
	Products int // catalog size: product ids are 1..Products

	mu    sync.Mutex
	acked []Order
	seen  map[string]bool
	keys  int64
}

// NewClient returns the HTTP client the generator uses: keep-alive, no cap on
// connections (an open-model client opens what the arrivals need), and no
// automatic retries.
func NewClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 4096
	t.MaxIdleConnsPerHost = 4096
	t.DisableCompression = true
	return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var searchWords = []string{"phone", "laptop", "headphones", "iphone", "camera", "watch", "speaker", "tablet", "monitor", "keyboard", "iphnoe", "wireless"}

// Send is one shopper's action of kind k, due at offset due from start: a
// request and, like a real shopper, up to Retries more if it fails. A
// shopper retries at once after a timeout, a dropped connection or a 5xx
// (the "buy" button pressed again), and after a 429 or 503 when Retry-After
// says. Retries of an order carry the same idempotency key. Every attempt is
// a Result of its own, handed to record: the server sees each one as load.
func (s *Shop) Send(ctx context.Context, k scenario.Kind, start time.Time, due time.Duration, record func(Result)) {
	who := s.Shoppers[rand.N(len(s.Shoppers))]
	if k == scenario.ReadOrder && who.anyOrder() == "" {
		k = scenario.Product // nothing to read yet
	}
	build, order := s.request(k, who)
	for attempt := 0; ; attempt++ {
		res, retryAfter := s.attempt(ctx, build, k, who, order, start, due)
		res.Retry = attempt > 0
		record(res)
		if res.Class.Good() || res.Class == Late || res.Class == ClientError || attempt == s.Retries || ctx.Err() != nil {
			return
		}
		if !res.Class.Refusal() && res.Class != InProgress { // those say when to come back
			retryAfter = 50*time.Millisecond + rand.N(200*time.Millisecond) // a human's reflex
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retryAfter):
		}
		due = time.Since(start)
	}
}

// attempt sends one request and classifies the answer; retryAfter is the
// server's Retry-After, if it sent one (at most 5 s).
func (s *Shop) attempt(ctx context.Context, build func(context.Context) *http.Request, k scenario.Kind, who *Shopper,
	order *Order, start time.Time, due time.Duration) (res Result, retryAfter time.Duration) {
	ctx, cancel := context.WithDeadline(ctx, start.Add(due).Add(s.Timeout))
	defer cancel()
	res = Result{Due: due, Kind: k, Lag: max(0, time.Since(start.Add(due)))}
	resp, err := s.Client.Do(build(ctx))
	if err == nil {
		var body []byte
		body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err == nil {
			res.Class, res.Code, res.Stale = classify(resp.StatusCode, body)
			if resp.StatusCode == http.StatusCreated && order != nil {
				var created struct{ ID string }
				if json.Unmarshal(body, &created) == nil && created.ID != "" {
					o := *order
					o.ID = created.ID
					s.ack(who, o)
				}
			}
			retryAfter = web.RetryAfter(resp.Header, 5*time.Second)
		}
	}
	if err != nil {
		res.Class = classifyError(err)
	}
	res.Latency = time.Since(start.Add(due))
	if res.Class.Good() && res.Latency > LateAfter {
		res.Class = Late // answered, and right, but the shopper had given up
	}
	return res, retryAfter
}

// request returns a builder of kind k's request for shopper who (called
// again for each retry, with the same body and idempotency key) and, for an
// order, what it orders.
func (s *Shop) request(k scenario.Kind, who *Shopper) (func(context.Context) *http.Request, *Order) {
	method, url, body := http.MethodGet, "", ""
	var order *Order
	header := http.Header{"X-Forwarded-For": {who.IP}}
	switch k {
	case scenario.Search:
		url = s.Targets.Search + "/v1/products?limit=20&q=" + searchWords[rand.N(len(searchWords))]
	case scenario.Product:
		id := int64(rand.N(3) + 1) // the flash-sale products, everybody's looking at them
		if rand.N(2) == 0 {
			id = int64(rand.N(min(s.Products, 1000)) + 1)
		}
		url = fmt.Sprintf("%s/v1/products/%d", s.Targets.Search, id)
	case scenario.Login:
		b, _ := json.Marshal(map[string]string{"email": who.Email, "password": who.Password})
		method, url, body = http.MethodPost, s.Targets.User+"/v1/sessions", string(b)
	case scenario.OrderHot, scenario.OrderOther:
		order = &Order{UserID: who.ID, ProductID: catalog.HotProductID, Quantity: 1}
		if k == scenario.OrderOther {
			order.ProductID = int64(rand.N(s.Products-10) + 11) // past the flash-sale ids: plenty of stock
		}
		method, url = http.MethodPost, s.Targets.Order+"/v1/orders"
		body = fmt.Sprintf(`{"items":[{"product_id":%d,"quantity":%d}]}`, order.ProductID, order.Quantity)
		header.Set("Idempotency-Key", s.newKey())
	case scenario.ReadOrder:
		url = s.Targets.Order + "/v1/orders/" + who.anyOrder()
	}
	if k != scenario.Login {
		header.Set("Authorization", "Bearer "+who.Token)
	}
	if body != "" {
		header.Set("Content-Type", "application/json")
	}
	return func(ctx context.Context) *http.Request {
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req, _ := http.NewRequestWithContext(ctx, method, url, r)
		req.Header = header.Clone()
		return req
	}, order
}

func (s *Shop) newKey() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys++
	return fmt.Sprintf("replay-%d-%d", time.Now().UnixNano(), s.keys)
}

func (s *Shop) ack(who *Shopper, o Order) {
	s.mu.Lock()
	if s.seen == nil {
		s.seen = map[string]bool{}
	}
	if s.seen[o.ID] { // a retry answered with the first attempt's order
		s.mu.Unlock()
		return
	}
	s.seen[o.ID] = true
	s.acked = append(s.acked, o)
	s.mu.Unlock()
	who.mu.Lock()
	who.orders = append(who.orders, o.ID)
	who.mu.Unlock()
}

// Acknowledged returns every order the shop answered 201 to.
func (s *Shop) Acknowledged() []Order {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Order(nil), s.acked...)
}

func (w *Shopper) anyOrder() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.orders) == 0 {
		return ""
	}
	return w.orders[rand.N(len(w.orders))]
}

// classify reads an answer's class from its status and error code, and
// returns the code too ("" if the body has none) and whether the answer was a
// stale copy.
func classify(status int, body []byte) (class Class, code string, stale bool) {
	var e struct {
		Error struct{ Code string } `json:"error"`
		Stale bool                  `json:"stale"`
	}
	_ = json.Unmarshal(body, &e)
	code = e.Error.Code
	switch {
	case status >= 200 && status < 300:
		return OK, code, e.Stale
	case status == http.StatusConflict && code == "sold_out":
		return SoldOut, code, false
	case status == http.StatusConflict && code == "request_in_progress":
		// The shopper pressed "buy" again while the first press was still
		// being served: the right answer to the retry, not a broken contract.
		return InProgress, code, false
	case status == http.StatusTooManyRequests:
		return Limited, code, false
	case status == http.StatusServiceUnavailable && code == "overloaded":
		return Shed, code, false
	case status == http.StatusServiceUnavailable:
		return Unavailable, code, false
	case status >= 500:
		return ServerError, code, false
	default:
		return ClientError, code, false
	}
}

// classifyError tells a request that got no answer in time from one that
// found nobody listening.
func classifyError(err error) Class {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Timeout
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return Refused
	default:
		return Refused // any other transport failure: no answer from a live server
	}
}

// Pick draws a kind from mix.
func Pick(mix scenario.Mix) scenario.Kind {
	total := 0.0
	for _, k := range scenario.Kinds {
		total += mix[k]
	}
	x := rand.Float64() * total
	for _, k := range scenario.Kinds {
		if x < mix[k] {
			return k
		}
		x -= mix[k]
	}
	return scenario.Search
}
