package resolve

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// Backoff is the retry schedule for throttling and transient faults:
// decorrelated jitter, each delay drawn from [Base, 3×previous] and capped at
// Cap, so a fleet that was throttled together does not retry together.
// A 429 without Retry-After draws from ThrottledBase instead of Base; a
// Retry-After from the service is honoured, with up to Base of jitter added.
// Retries go on until the context ends, the last one just before its
// deadline.
type Backoff struct {
	// Base is the least wait: a transient fault (5xx, a dropped
	// connection, a malformed answer) is first retried within 3×Base.
	Base time.Duration
	// Cap bounds every drawn wait (not a Retry-After, which is the
	// service's to choose). It is also the longest the vault can sit idle
	// while throttled clients sleep, so it sets a fleet's tail.
	Cap time.Duration
	// ThrottledBase, when longer than Base, is the least wait after a 429
	// without Retry-After: the vault asked for less traffic, so a throttled
	// client starts slower than one that met a transient fault.
	ThrottledBase time.Duration
}

// DefaultBackoff retries a transient fault after 0.25–0.75 s and a 429
// without Retry-After after 1–3 s (Microsoft's guidance starts at 1 s); no
// drawn wait exceeds 4 s. BenchmarkFleet (256 processes × 20 secrets against
// a vault serving 400 GETs a second) chose the figures: with an 8 s cap the
// vault sat idle while the last processes slept, and the fleet took 1.48×
// the minimum; a 4 s cap takes 1.17×, and starting throttled clients at 1 s
// rather than 250 ms halves the 429s for the same wall time.
var DefaultBackoff = Backoff{Base: 250 * time.Millisecond, Cap: 4 * time.Second, ThrottledBase: time.Second}

func (b Backoff) base() time.Duration {
	if b.Base <= 0 {
		return DefaultBackoff.Base
	}
	return b.Base
}

// next returns the delay after prev (zero for the first retry).
func (b Backoff) next(prev time.Duration) time.Duration {
	base, limit := b.base(), b.Cap
	if limit < base {
		limit = base
	}
	hi := 3 * prev
	if hi <= base {
		hi = 3 * base
	}
	d := base + rand.N(hi-base)
	return min(d, limit)
}

// after returns the wait before the next try, prev being the last wait: the
// service's retryAfter when it sent one, plus up to Base of jitter so that
// the clients it throttled together come back spread out; else a draw of
// the schedule, from ThrottledBase when the answer was a 429.
func (b Backoff) after(prev, retryAfter time.Duration, throttled bool) time.Duration {
	if retryAfter > 0 {
		return retryAfter + rand.N(b.base())
	}
	if throttled && b.ThrottledBase > b.base() {
		b.Base = b.ThrottledBase
	}
	return b.next(prev)
}

// within shortens a wait that would outlast the time left before a deadline,
// so that one last try starts Base before it: SPEC §5 says never to give up
// while time remains. With less than two Base left, the wait is kept and the
// caller gives up at the deadline.
func (b Backoff) within(delay, left time.Duration) time.Duration {
	base := b.base()
	if delay > left-base && left > 2*base {
		return left - base
	}
	return delay
}

// isThrottled reports a 429 answer.
func isThrottled(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusTooManyRequests
}

// retryAfter reads the service's requested delay from a throttled answer:
// Retry-After in seconds or as an HTTP date, or the millisecond variants
// Azure services send. It returns 0 when there is none.
func retryAfter(h http.Header, now time.Time) time.Duration {
	for _, name := range []string{"Retry-After-Ms", "X-Ms-Retry-After-Ms"} {
		if v := h.Get(name); v != "" {
			if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
				return time.Duration(ms * float64(time.Millisecond))
			}
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
