// Package binancetest is a fake of Binance's REST API for tests: GET
// /api/v3/ticker/price with ?symbol= or ?symbols=, the X-MBX-USED-WEIGHT-1M
// header, and scripted faults (rate limits, bans, server errors, slow or
// malformed answers, bad prices). It listens on 127.0.0.1.
package binancetest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Binance's answers to refused requests.
const (
	RateLimitBody     = `{"code":-1003,"msg":"Too much request weight used; current limit is 6000 request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API."}`
	BanBody           = `{"code":-1003,"msg":"Way too much request weight used; IP banned until 1746677558352. Please use WebSocket Streams for live updates to avoid bans."}`
	InvalidSymbolBody = `{"code":-1121,"msg":"Invalid symbol."}`
	RestrictedBody    = `{"code":0,"msg":"Service unavailable from a restricted location according to 'b. Eligibility' in https://www.binance.com/en/terms. Please contact customer service if you believe you received this message in error."}`
)

// Fault is a scripted answer to one request.
type Fault struct {
	Status     int               // the HTTP status; 0 is 200
	RetryAfter string            // the Retry-After header, if not ""
	Body       string            // the body instead of the normal answer, if not ""
	Delay      time.Duration     // a wait before answering; it ends early when the client goes away
	Prices     map[string]string // prices for this answer only, over the server's
}

// RateLimited is Binance's 429 with Retry-After (seconds, "" for none).
func RateLimited(retryAfter string) Fault {
	return Fault{Status: http.StatusTooManyRequests, RetryAfter: retryAfter, Body: RateLimitBody}
}

// Banned is Binance's 418 (IP banned) with Retry-After (seconds, "" for none).
func Banned(retryAfter string) Fault {
	return Fault{Status: http.StatusTeapot, RetryAfter: retryAfter, Body: BanBody}
}

// ServerError is an answer with a 5xx status and an HTML body, as a proxy
// in front of Binance gives.
func ServerError(status int) Fault {
	return Fault{Status: status, Body: "<html><body><h1>" + strconv.Itoa(status) + " " + http.StatusText(status) + "</h1></body></html>"}
}

// Slow delays the normal answer by d.
func Slow(d time.Duration) Fault { return Fault{Delay: d} }

// Malformed answers 200 with body.
func Malformed(body string) Fault { return Fault{Body: body} }

// BadPrice answers normally except that symbol's price is price.
func BadPrice(symbol, price string) Fault { return Fault{Prices: map[string]string{symbol: price}} }

// Request is a request the server received.
type Request struct {
	Time    time.Time // when it arrived, by the server's clock
	Symbols []string  // the symbols asked for
	Status  int       // the status answered; 0 when the client went away first
	Faulty  bool      // whether a scripted fault answered it
	Weight  int       // the X-MBX-USED-WEIGHT-1M answered
}

// Server is a fake Binance. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	prices   map[string]string
	faults   []Fault
	requests []Request
	extra    int
	minute   int64 // the minute (Unix) whose weight used is counted
	used     int
}

// DefaultPrices are the prices of a server given none.
var DefaultPrices = map[string]string{"BTCUSDT": "99190.48000000", "ETHUSDT": "1812.34000000"}

// NewServer starts a fake Binance with prices (symbol -> Binance's decimal
// string; nil for DefaultPrices). Close it at the end.
func NewServer(prices map[string]string) *Server {
	if prices == nil {
		prices = DefaultPrices
	}
	s := &Server{prices: make(map[string]string)}
	for k, v := range prices {
		s.prices[k] = v
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v3/ticker/price", s.ticker)
	s.Server = httptest.NewServer(mux)
	return s
}

// SetPrice sets the price of a symbol (adding the symbol if new).
func (s *Server) SetPrice(symbol, price string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prices[symbol] = price
}

// Script queues faults; each answers one request, in order, after those
// already queued.
func (s *Server) Script(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, faults...)
}

// Pending returns the number of scripted faults not used yet.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.faults)
}

// SetExtraWeight sets a request weight used by other clients of the same
// IP, added to the weight reported in X-MBX-USED-WEIGHT-1M.
func (s *Server) SetExtraWeight(w int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.extra = w
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

type ticker struct {
	Symbol string `json:"symbol"`
	Price  string `json:"price"`
}

func (s *Server) ticker(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	q := r.URL.Query()
	var (
		symbols []string
		weight  = 4
		status  = http.StatusOK
		body    []byte
	)
	one, many := q.Get("symbol"), q.Get("symbols")
	switch {
	case one != "" && many != "":
		status, body = http.StatusBadRequest, []byte(`{"code":-1101,"msg":"Too many parameters; expected 'symbol' or 'symbols'."}`)
	case one != "":
		symbols, weight = []string{one}, 2
	case many != "":
		if json.Unmarshal([]byte(many), &symbols) != nil || len(symbols) == 0 {
			status, body = http.StatusBadRequest, []byte(`{"code":-1100,"msg":"Illegal characters found in parameter 'symbols'."}`)
		}
	}

	s.mu.Lock()
	if m := now.Unix() / 60; m != s.minute {
		s.minute, s.used = m, 0
	}
	s.used += weight
	reported := s.used + s.extra
	var f *Fault
	if len(s.faults) > 0 {
		f = &s.faults[0]
		s.faults = s.faults[1:]
	}
	if status == http.StatusOK {
		if one == "" && many == "" {
			for k := range s.prices {
				symbols = append(symbols, k)
			}
			slices.Sort(symbols)
		}
		list := make([]ticker, 0, len(symbols))
		for _, sym := range symbols {
			p, ok := s.prices[sym]
			if f != nil && f.Prices[sym] != "" {
				p, ok = f.Prices[sym], true
			}
			if !ok {
				status, body = http.StatusBadRequest, []byte(InvalidSymbolBody)
				break
			}
			list = append(list, ticker{Symbol: sym, Price: p})
		}
		if status == http.StatusOK {
			if one != "" {
				body, _ = json.Marshal(list[0])
			} else {
				body, _ = json.Marshal(list)
			}
		}
	}
	s.requests = append(s.requests, Request{Time: now, Symbols: symbols, Faulty: f != nil, Weight: reported})
	idx := len(s.requests) - 1
	s.mu.Unlock()

	if f != nil {
		if f.Delay > 0 {
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if f.Status != 0 {
			status = f.Status
		}
		if f.Body != "" {
			body = []byte(f.Body)
		}
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
	}
	w.Header().Set("X-MBX-USED-WEIGHT-1M", strconv.Itoa(reported))
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	w.Write(body)
	s.mu.Lock()
	s.requests[idx].Status = status
	s.mu.Unlock()
}
