package launcher

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
	"sort"
	"sync"
	"time"
)

// MaskText is what a masked secret value is replaced with. Its length is
// fixed so that the output does not reveal the length of the value.
const MaskText = "*****"

// MinMaskLen is the shortest value (or line of a multi-line value) that is
// masked. Shorter ones would mask ordinary output ("true", "1") and hide
// nothing worth hiding.
const MinMaskLen = 4

// DefaultMaskDelay is how long a Masker holds back output that may be the
// start of a secret when no more output follows.
const DefaultMaskDelay = 100 * time.Millisecond

var errMaskerClosed = errors.New("write to a closed masker")

// Masker is a streaming io.Writer that replaces every occurrence of a
// secret value with MaskText before passing the output on to its destination.
//
// A value containing newlines is masked line by line (each line of
// MinMaskLen bytes or more, a trailing "\r" removed, is a pattern of its
// own), because programs print multi-line values such as PEM keys line by
// line, interleaved with other output. Where patterns overlap, the leftmost
// match wins, and at one position the longest.
//
// Matches split across writes are still masked: the Masker holds back only
// the end of the output that may still become a match (less than one
// secret long), and releases it, unmasked, as soon as a write shows it does
// not, or after Delay without a write, or on Flush or Close. No pattern
// contains a newline, so a newline always releases everything before it.
// All other bytes pass unchanged and in order.
//
// A Masker is safe for concurrent use.
type Masker struct {
	// Delay is how long held output waits for the write that completes or
	// refutes a match. Zero means DefaultMaskDelay; a negative Delay holds
	// output until the next Write, Flush or Close. Set it before the first
	// Write.
	Delay time.Duration

	m *matcher // nil when there is nothing to mask

	mu        sync.Mutex
	dst       io.Writer
	pending   []byte // output that may still be the start of a match
	out       []byte // scratch buffer for output with masks applied
	timer     *time.Timer
	lastWrite time.Time
	err       error // sticky: the first error from dst
	closed    bool
}

// NewMasker returns a Masker writing to dst that masks each of secrets.
// Values shorter than MinMaskLen are ignored; the slices are copied.
func NewMasker(dst io.Writer, secrets [][]byte) *Masker {
	return &Masker{dst: dst, m: newMatcher(maskPatterns(secrets))}
}

// Write masks p and writes what is decided to the destination. It returns
// len(p) unless the destination failed; the first destination error is
// returned by every later call.
func (w *Masker) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errMaskerClosed
	}
	if w.m == nil {
		if err := writeAll(w.dst, p); err != nil {
			w.err = err
			return 0, err
		}
		return len(p), nil
	}

	buf := p
	joined := len(w.pending) > 0
	if joined {
		// A held suffix is shorter than the longest pattern, so joining it
		// with p is a cheap copy, and scanning the joined buffer finds
		// matches that straddle the two writes.
		w.pending = append(w.pending, p...)
		buf = w.pending
	}
	n, err := w.process(buf, false)
	if err != nil {
		w.err = err
		return 0, err
	}
	rest := buf[n:]
	if joined {
		// copy is a memmove, so the overlap with buf is fine.
		w.pending = w.pending[:copy(w.pending, rest)]
	} else {
		w.pending = append(w.pending[:0], rest...)
	}
	if cap(w.pending) > 64<<10 {
		// A large write joined with a held suffix grew the buffer; do not
		// keep that memory for the life of the stream.
		w.pending = bytes.Clone(w.pending)
	}
	if len(w.pending) > 0 {
		w.armTimer()
	}
	return len(p), nil
}

// Flush writes any held output, unmasked where it can no longer become a
// match. A secret split by a Flush is not masked: Flush marks the end of a
// stream, such as a closed pipe.
func (w *Masker) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

// Close flushes held output and stops the Masker's timer. It does not
// close the destination. Writes after Close fail.
func (w *Masker) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.flushLocked()
	if w.timer != nil {
		w.timer.Stop()
	}
	w.closed = true
	return err
}

func (w *Masker) flushLocked() error {
	if w.err != nil {
		return w.err
	}
	if len(w.pending) == 0 {
		return nil
	}
	_, err := w.process(w.pending, true)
	w.pending = w.pending[:0]
	if err != nil {
		w.err = err
	}
	return err
}

// armTimer makes sure held output is released Delay after this write.
func (w *Masker) armTimer() {
	d := w.delay()
	if d < 0 {
		return
	}
	w.lastWrite = time.Now()
	if w.timer == nil {
		w.timer = time.AfterFunc(d, w.onTimer)
		return
	}
	w.timer.Reset(d)
}

func (w *Masker) delay() time.Duration {
	if w.Delay == 0 {
		return DefaultMaskDelay
	}
	return w.Delay
}

// onTimer releases held output once Delay has passed since the last write.
// A timer that fires early (it raced with a Reset) re-arms itself instead.
func (w *Masker) onTimer() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || len(w.pending) == 0 {
		return
	}
	if left := w.delay() - time.Since(w.lastWrite); left > 0 {
		w.timer.Reset(left)
		return
	}
	w.flushLocked() // a failure is sticky and reported by the next call
}

// process masks buf, writes every byte whose fate is decided and returns
// how many bytes of buf that covers. Unless final, it stops at the first
// position where a match may start but the bytes to decide it have not
// arrived yet; the rest must be held. With final, the stream ends at
// len(buf), so nothing is undecided.
func (w *Masker) process(buf []byte, final bool) (int, error) {
	m := w.m
	out := w.out[:0]
	last, i, end := 0, 0, len(buf)
	shift := 32 - m.bits
	filter := m.filter
	var (
		cached     bool
		cachedX    uint32
		cachedPats [][]byte
	)

	// The hot loop: one 4-byte load, a multiply and a bit test per byte.
	// Every pattern is at least MinMaskLen (4) bytes long, so a position
	// whose next 4 bytes are not the prefix of any pattern (the filter
	// has no false negatives) cannot start a match.
scan:
	for i+MinMaskLen <= end {
		// Test four positions per 8-byte load while nothing can match;
		// the four hash-and-test chains are independent, so the CPU
		// overlaps them.
		for i+8 <= end {
			y := binary.LittleEndian.Uint64(buf[i:])
			h0 := (uint32(y) * hashMul) >> shift
			h1 := (uint32(y>>8) * hashMul) >> shift
			h2 := (uint32(y>>16) * hashMul) >> shift
			h3 := (uint32(y>>24) * hashMul) >> shift
			if filter[h0>>6]&(1<<(h0&63))|filter[h1>>6]&(1<<(h1&63))|
				filter[h2>>6]&(1<<(h2&63))|filter[h3>>6]&(1<<(h3&63)) != 0 {
				break
			}
			i += 4
		}
		x := binary.LittleEndian.Uint32(buf[i:])
		h := (x * hashMul) >> shift
		if filter[h>>6]&(1<<(h&63)) == 0 {
			i++
			continue
		}
		if !cached || x != cachedX {
			// Repetitive output (rules of dashes, padding) hits the same
			// prefix at position after position; skip the map lookup.
			cached, cachedX, cachedPats = true, x, m.byPrefix[x]
		}
		n, undecided := matchAt(cachedPats, buf[i:], final)
		switch {
		case undecided:
			end = i
			break scan
		case n == 0:
			i++
		default:
			out = append(out, buf[last:i]...)
			out = append(out, MaskText...)
			i += n
			last = i
		}
	}
	if !final {
		// Fewer than 4 bytes left: they can only be the start of a match.
		for ; i < end; i++ {
			if m.isPrefix(buf[i:end]) {
				end = i
				break
			}
		}
	}

	var err error
	if len(out) == 0 {
		err = writeAll(w.dst, buf[last:end])
	} else {
		out = append(out, buf[last:end]...)
		err = writeAll(w.dst, out)
		if cap(out) <= 64<<10 {
			w.out = out[:0]
		}
	}
	return end, err
}

func writeAll(dst io.Writer, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	n, err := dst.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return err
}

// maskPatterns turns secret values into the byte strings to mask:
// multi-line values become one pattern per line (without a trailing "\r"),
// values and lines shorter than MinMaskLen are dropped, duplicates removed.
func maskPatterns(secrets [][]byte) [][]byte {
	seen := map[string]bool{}
	var pats [][]byte
	add := func(p []byte) {
		if len(p) < MinMaskLen || seen[string(p)] {
			return
		}
		seen[string(p)] = true
		pats = append(pats, bytes.Clone(p))
	}
	for _, s := range secrets {
		if bytes.IndexByte(s, '\n') < 0 {
			add(s)
			continue
		}
		for _, line := range bytes.Split(s, []byte("\n")) {
			add(bytes.TrimSuffix(line, []byte("\r")))
		}
	}
	return pats
}

// hashMul is a multiplicative (Fibonacci) hash constant: 2^32 divided by
// the golden ratio. Its top bits mix all four prefix bytes.
const hashMul = 0x9E3779B1

// matcher finds patterns in a buffer. It is immutable once built.
//
// The algorithm is a prefilter plus verification, chosen over an
// Aho–Corasick automaton because the prefilter's tables stay in L1 cache
// regardless of how many secrets there are, while a byte-indexed DFA needs
// 1 KiB per state (tens of MiB for a thousand 64-byte secrets) and a
// sparse one is slower per byte. Output rarely contains the 4-byte prefix
// of a secret, so verification almost never runs.
type matcher struct {
	maxLen int
	bits   uint     // log2 of the number of filter bits
	filter []uint64 // bit hash(prefix4(p)) is set for every pattern p
	// byPrefix lists the patterns by their first 4 bytes (little-endian),
	// longest first, so the first full match found is the longest.
	byPrefix map[uint32][][]byte
	// Prefixes of 1 to 3 bytes, to decide what to hold at the end of a
	// buffer.
	pre1 [256]bool
	pre2 []uint64
	pre3 map[uint32]bool
}

func newMatcher(pats [][]byte) *matcher {
	if len(pats) == 0 {
		return nil
	}
	m := &matcher{
		byPrefix: map[uint32][][]byte{},
		pre2:     make([]uint64, 1<<16/64),
		pre3:     map[uint32]bool{},
	}
	// 256 to 512 filter bits per pattern keep false positives (a map
	// lookup each) under 0.4% of positions; the table is 2 KiB for up to
	// 64 patterns and stays within L1 or L2 cache up to thousands.
	m.bits = uint(bits.Len(uint(256*len(pats)) - 1))
	m.bits = max(14, min(m.bits, 20))
	m.filter = make([]uint64, 1<<m.bits/64)
	for _, p := range pats {
		m.maxLen = max(m.maxLen, len(p))
		x := binary.LittleEndian.Uint32(p)
		h := (x * hashMul) >> (32 - m.bits)
		m.filter[h>>6] |= 1 << (h & 63)
		m.byPrefix[x] = append(m.byPrefix[x], p)
		m.pre1[p[0]] = true
		x2 := uint32(p[0]) | uint32(p[1])<<8
		m.pre2[x2>>6] |= 1 << (x2 & 63)
		m.pre3[x&0xFFFFFF] = true
	}
	for _, ps := range m.byPrefix {
		sort.Slice(ps, func(i, j int) bool { return len(ps[i]) > len(ps[j]) })
	}
	return m
}

// matchAt reports the length of the longest of pats (the patterns
// sharing rem's first 4 bytes, longest first) at the start of rem, or
// undecided when rem ends before a longer pattern could be ruled out and
// more input may follow.
func matchAt(pats [][]byte, rem []byte, final bool) (n int, undecided bool) {
	for _, p := range pats {
		if len(rem) >= len(p) {
			if bytes.Equal(rem[:len(p)], p) {
				return len(p), false
			}
		} else if !final && bytes.HasPrefix(p, rem) {
			return 0, true
		}
	}
	return 0, false
}

// isPrefix reports whether rem (1 to 3 bytes) is the start of a pattern.
func (m *matcher) isPrefix(rem []byte) bool {
	switch len(rem) {
	case 1:
		return m.pre1[rem[0]]
	case 2:
		x := uint32(rem[0]) | uint32(rem[1])<<8
		return m.pre2[x>>6]&(1<<(x&63)) != 0
	case 3:
		return m.pre3[uint32(rem[0])|uint32(rem[1])<<8|uint32(rem[2])<<16]
	}
	return false
}
