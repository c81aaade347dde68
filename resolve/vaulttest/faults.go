package vaulttest

import (
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
)

// FaultMode is how a Fault fails a request.
type FaultMode int

const (
	// StatusError answers with Fault.Status and Key Vault's error body for it.
	StatusError FaultMode = iota
	// CloseConn closes the connection without answering.
	CloseConn
	// ResetConn resets the connection (TCP RST, via SO_LINGER 0) without answering.
	ResetConn
	// TruncatedJSON answers a GET with 200 and half of the JSON body.
	TruncatedJSON
	// HTMLBody answers a GET with 200 and an HTML page, as a captive portal
	// or a misrouted gateway would.
	HTMLBody
)

// Fault makes the server fail matching requests. Faults apply in the order
// they were added and only to requests that passed authentication.
type Fault struct {
	// Vault limits the fault to one vault; empty matches every vault.
	Vault string
	// Secret limits the fault to GETs of one secret (any version, compared
	// case-insensitively); empty matches every request.
	Secret string
	// Times is how many matching requests fail; zero means once and a
	// negative number every matching request until ClearFaults.
	Times int
	// Mode selects the failure; the zero value is StatusError.
	Mode FaultMode
	// Status is the HTTP status for StatusError, such as 429, 500 or 503.
	Status int
	// RetryAfter, when positive, is sent as a Retry-After header in whole
	// seconds, rounded up, with a StatusError.
	RetryAfter time.Duration
}

// AddFault arms f.
func (s *Server) AddFault(f Fault) {
	if f.Times == 0 {
		f.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults disarms every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// takeFaultLocked consumes and returns the first fault matching the request,
// or nil.
func (s *Server) takeFaultLocked(vault, method, secretName string) *Fault {
	for i, f := range s.faults {
		if f.Vault != "" && !strings.EqualFold(f.Vault, vault) {
			continue
		}
		if f.Secret != "" && (method != http.MethodGet || !strings.EqualFold(f.Secret, secretName)) {
			continue
		}
		if (f.Mode == TruncatedJSON || f.Mode == HTMLBody) && method != http.MethodGet {
			continue
		}
		taken := *f
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = slices.Delete(s.faults, i, i+1)
			}
		}
		return &taken
	}
	return nil
}

// SetLatency delays every request, the 401 challenge included, by d before
// it is answered. Zero removes the delay.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

type throttle struct {
	limit      int
	window     time.Duration
	retryAfter bool
	start      time.Time
}

// SetThrottle limits every vault to limit secret GETs per fixed window, as
// Key Vault's service limits do; windows start when SetThrottle is called.
// Requests beyond the limit get 429 Throttled, with a Retry-After header
// counting the seconds to the end of the window only when retryAfter is true
// (real 429s were seen both ways). A limit of zero or less turns throttling off.
func (s *Server) SetThrottle(limit int, window time.Duration, retryAfter bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = throttle{limit: limit, window: window, retryAfter: retryAfter, start: time.Now()}
	for _, v := range s.vaults {
		v.window, v.inWin = 0, 0
	}
}

// throttledLocked counts a secret GET against v and reports whether it is
// over the limit, with the time left in the window.
func (s *Server) throttledLocked(v *vault, now time.Time) (bool, time.Duration) {
	t := s.throttle
	if t.limit <= 0 || t.window <= 0 {
		return false, 0
	}
	idx := int64(now.Sub(t.start) / t.window)
	if idx != v.window {
		v.window, v.inWin = idx, 0
	}
	v.inWin++
	if v.inWin <= t.limit {
		return false, 0
	}
	end := t.start.Add(time.Duration(idx+1) * t.window)
	return true, end.Sub(now)
}

// retryAfterSeconds renders d as a Retry-After value: whole seconds, rounded
// up, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// Stats counts what the server saw since New or Reset.
type Stats struct {
	Requests     int            // every request, answered or not
	ByVault      map[string]int // requests per vault name
	Challenges   int            // 401 challenges served
	Throttled    int            // 429 responses served, by faults or throttling
	PeakInFlight int            // most requests in flight at once, latency included
}

// Entry is one request in the server's log.
type Entry struct {
	Time       time.Time // arrival
	Method     string
	Host       string
	Vault      string
	Path       string
	RawQuery   string
	Status     int  // 0 when the connection was closed or reset unanswered
	Authorized bool // a bearer token was presented and accepted
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByVault = maps.Clone(s.stats.ByVault)
	return st
}

// Log returns a copy of the request log, in order of completion.
func (s *Server) Log() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// Reset clears the counters and the log. Secrets, faults and settings stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{ByVault: map[string]int{}, PeakInFlight: s.inFlight}
	s.log = nil
}

func (s *Server) begin(vault string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight++
	s.stats.PeakInFlight = max(s.stats.PeakInFlight, s.inFlight)
	s.stats.Requests++
	s.stats.ByVault[vault]++
	return s.latency
}

func (s *Server) end(e Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight--
	switch e.Status {
	case http.StatusUnauthorized:
		s.stats.Challenges++
	case http.StatusTooManyRequests:
		s.stats.Throttled++
	}
	s.log = append(s.log, e)
}
