package resolve

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"none", http.Header{}, 0},
		{"seconds", http.Header{"Retry-After": {"3"}}, 3 * time.Second},
		{"fractional seconds", http.Header{"Retry-After": {"0.5"}}, 500 * time.Millisecond},
		{"http date", http.Header{"Retry-After": {now.Add(7 * time.Second).Format(http.TimeFormat)}}, 7 * time.Second},
		{"past date", http.Header{"Retry-After": {now.Add(-time.Second).Format(http.TimeFormat)}}, 0},
		{"milliseconds win", http.Header{"Retry-After": {"3"}, "Retry-After-Ms": {"250"}}, 250 * time.Millisecond},
		{"x-ms milliseconds", http.Header{"X-Ms-Retry-After-Ms": {"1500"}}, 1500 * time.Millisecond},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0},
		{"negative", http.Header{"Retry-After": {"-1"}}, 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.header, now); got != tt.want {
			t.Errorf("%s: retryAfter = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestBackoffStaysInBounds(t *testing.T) {
	t.Parallel()
	b := Backoff{Base: 100 * time.Millisecond, Cap: 2 * time.Second}
	var d time.Duration
	grew := false
	for range 1000 {
		next := b.next(d)
		if next < b.Base || next > b.Cap {
			t.Fatalf("next(%v) = %v, outside [%v, %v]", d, next, b.Base, b.Cap)
		}
		if hi := max(3*d, 3*b.Base); next > hi {
			t.Fatalf("next(%v) = %v, above 3×previous %v", d, next, hi)
		}
		grew = grew || next > time.Second
		d = next
	}
	if !grew {
		t.Error("the delays never grew towards the cap")
	}
}

func TestBackoffHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	b := Backoff{Base: 100 * time.Millisecond, Cap: time.Second}
	for range 1000 {
		// A Retry-After above Cap is still honoured: the service knows best.
		if d := b.after(0, 5*time.Second, true); d < 5*time.Second || d >= 5*time.Second+b.Base {
			t.Fatalf("after(Retry-After 5s) = %v, want [5s, 5.1s)", d)
		}
		if d := b.after(time.Second, 0, false); d < b.Base || d > b.Cap {
			t.Fatalf("after(no Retry-After) = %v, outside [%v, %v]", d, b.Base, b.Cap)
		}
	}
}

func TestBackoffStartsThrottledClientsSlower(t *testing.T) {
	t.Parallel()
	b := DefaultBackoff
	for range 1000 {
		// A transient fault is retried within about a second.
		if d := b.after(0, 0, false); d < b.Base || d >= 3*b.Base {
			t.Fatalf("first wait after a 5xx = %v, want [%v, %v)", d, b.Base, 3*b.Base)
		}
		if d := b.after(0, 0, true); d < b.ThrottledBase || d > min(3*b.ThrottledBase, b.Cap) {
			t.Fatalf("first wait after a 429 = %v, want [%v, %v]", d, b.ThrottledBase, 3*b.ThrottledBase)
		}
	}
	// Without ThrottledBase (or below Base) a 429 is retried like a 5xx.
	plain := Backoff{Base: 100 * time.Millisecond, Cap: time.Second, ThrottledBase: time.Millisecond}
	for range 1000 {
		if d := plain.after(0, 0, true); d < plain.Base || d >= 3*plain.Base {
			t.Fatalf("first wait after a 429 = %v, want [%v, %v)", d, plain.Base, 3*plain.Base)
		}
	}
}

func TestBackoffLeavesTimeForALastTry(t *testing.T) {
	t.Parallel()
	b := Backoff{Base: 250 * time.Millisecond, Cap: 4 * time.Second}
	tests := []struct {
		name              string
		delay, left, want time.Duration
	}{
		{"fits", time.Second, 10 * time.Second, time.Second},
		{"shortened to a try Base before the deadline", 4 * time.Second, 3 * time.Second, 2750 * time.Millisecond},
		{"a Retry-After past the deadline too", 60 * time.Second, 10 * time.Second, 9750 * time.Millisecond},
		{"too close to the deadline to try again", time.Second, 400 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		if got := b.within(tt.delay, tt.left); got != tt.want {
			t.Errorf("%s: within(%v, %v) = %v, want %v", tt.name, tt.delay, tt.left, got, tt.want)
		}
	}
}
