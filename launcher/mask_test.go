package launcher

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// maskAll writes chunks through a Masker without a timer and closes it.
func maskAll(t testing.TB, secrets []string, chunks ...string) string {
	t.Helper()
	var out bytes.Buffer
	m := NewMasker(&out, toBytes(secrets))
	m.Delay = -1
	for _, c := range chunks {
		if n, err := m.Write([]byte(c)); n != len(c) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", c, n, err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return out.String()
}

func toBytes(ss []string) [][]byte {
	bs := make([][]byte, len(ss))
	for i, s := range ss {
		bs[i] = []byte(s)
	}
	return bs
}

// maskNaive is the reference: scan left to right, at each position
// replace the longest pattern that starts there, else copy one byte.
func maskNaive(in []byte, pats [][]byte) []byte {
	var out []byte
	for i := 0; i < len(in); {
		best := 0
		for _, p := range pats {
			if len(p) > best && bytes.HasPrefix(in[i:], p) {
				best = len(p)
			}
		}
		if best > 0 {
			out = append(out, MaskText...)
			i += best
		} else {
			out = append(out, in[i])
			i++
		}
	}
	return out
}

func TestMask(t *testing.T) {
	t.Parallel()
	pem := "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\r\nab\n-----END PRIVATE KEY-----\n"
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{name: "no secrets", in: "hello\nworld", want: "hello\nworld"},
		{name: "only short secrets", secrets: []string{"abc", "", "x"}, in: "abc abc x", want: "abc abc x"},
		{name: "middle", secrets: []string{"hunter22"}, in: "pw=hunter22;", want: "pw=*****;"},
		{name: "start and end of stream", secrets: []string{"hunter22"}, in: "hunter22 hunter22", want: "***** *****"},
		{name: "adjacent", secrets: []string{"abcd"}, in: "abcdabcdabc", want: "**********abc"},
		{name: "exactly four bytes", secrets: []string{"abcd"}, in: "xabcdx", want: "x*****x"},
		{name: "partial at end is released", secrets: []string{"hunter22"}, in: "x hunter2", want: "x hunter2"},
		{name: "overlap leftmost wins", secrets: []string{"cdefgh", "abcdef"}, in: "abcdefgh", want: "*****gh"},
		{name: "longest at a position wins", secrets: []string{"abcd", "abcdefgh"}, in: "abcdefghi", want: "*****i"},
		{name: "shorter wins when longer fails", secrets: []string{"abcd", "abcdefgh"}, in: "abcdefgX", want: "*****efgX"},
		{name: "shorter wins at end of stream", secrets: []string{"abcd", "abcdefgh"}, in: "abcdefg", want: "*****efg"},
		{name: "failed long candidate lets later match", secrets: []string{"abcdX", "bcde"}, in: "abcde", want: "a*****"},
		{name: "repeated prefix", secrets: []string{"aaab"}, in: "aaaaaab", want: "aaa*****"},
		{name: "multi-line value by lines", secrets: []string{pem}, in: "key:\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nab\n", want: "key:\n*****\n*****\nab\n"},
		{name: "multi-line value with crlf output", secrets: []string{pem}, in: "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\r\n", want: "*****\r\n"},
		{name: "multi-line value not masked whole", secrets: []string{"line1\nline2"}, in: "line1line2", want: "**********"},
		{name: "trailing newline of a value", secrets: []string{"token123\n"}, in: "token123 token123\n", want: "***** *****\n"},
		{name: "binary secret", secrets: []string{"\x00\xff\x10\x80"}, in: "a\x00\xff\x10\x80b", want: "a*****b"},
		{name: "duplicate secrets", secrets: []string{"hunter22", "hunter22"}, in: "hunter22", want: "*****"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := maskAll(t, tt.secrets, tt.in); got != tt.want {
				t.Errorf("one write: got %q, want %q", got, tt.want)
			}
			// The reference must agree, or the table is wrong.
			if ref := string(maskNaive([]byte(tt.in), maskPatterns(toBytes(tt.secrets)))); ref != tt.want {
				t.Errorf("reference: got %q, want %q", ref, tt.want)
			}
			// Every split into two writes, and every split into three.
			for i := 0; i <= len(tt.in); i++ {
				if got := maskAll(t, tt.secrets, tt.in[:i], tt.in[i:]); got != tt.want {
					t.Errorf("split at %d: got %q, want %q", i, got, tt.want)
				}
				for j := i; j <= len(tt.in); j++ {
					if got := maskAll(t, tt.secrets, tt.in[:i], tt.in[i:j], tt.in[j:]); got != tt.want {
						t.Errorf("split at %d,%d: got %q, want %q", i, j, got, tt.want)
					}
				}
			}
			// One byte per write.
			if got := maskAll(t, tt.secrets, strings.Split(tt.in, "")...); got != tt.want {
				t.Errorf("byte by byte: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMaskPatterns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secrets []string
		want    []string
	}{
		{name: "none"},
		{name: "short dropped", secrets: []string{"abc", "abcd"}, want: []string{"abcd"}},
		{name: "lines", secrets: []string{"first line\r\nxy\n\nsecond\n"}, want: []string{"first line", "second"}},
		{name: "single line keeps carriage return", secrets: []string{"abcd\r"}, want: []string{"abcd\r"}},
		{name: "duplicates", secrets: []string{"abcd", "x\nabcd"}, want: []string{"abcd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, p := range maskPatterns(toBytes(tt.secrets)) {
				got = append(got, string(p))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("maskPatterns mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMaskPatternsCopy(t *testing.T) {
	t.Parallel()
	secret := []byte("hunter22")
	var out bytes.Buffer
	m := NewMasker(&out, [][]byte{secret})
	m.Delay = -1
	copy(secret, "XXXXXXXX") // the caller may wipe its copy
	m.Write([]byte("hunter22"))
	m.Close()
	if got := out.String(); got != MaskText {
		t.Errorf("got %q, want %q", got, MaskText)
	}
}

// recorder records what reaches the destination, safe for the timer.
type recorder struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes++
	return r.buf.Write(p)
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

func TestMaskHoldsOnlyUndecidedSuffix(t *testing.T) {
	t.Parallel()
	var out recorder
	m := NewMasker(&out, toBytes([]string{"hunter22"}))
	m.Delay = -1
	steps := []struct{ write, want string }{
		{"user=bob pw=hun", "user=bob pw="}, // "hun" may become the secret
		{"ter", "user=bob pw="},
		{"22", "user=bob pw=*****"},
		{" and hunt", "user=bob pw=***** and "},
		{"\n", "user=bob pw=***** and hunt\n"}, // a newline decides everything before it
		{"huX", "user=bob pw=***** and hunt\nhuX"},
	}
	for _, s := range steps {
		m.Write([]byte(s.write))
		if got := out.String(); got != s.want {
			t.Fatalf("after writing %q: got %q, want %q", s.write, got, s.want)
		}
	}
}

func TestMaskTimerReleases(t *testing.T) {
	t.Parallel()
	var out recorder
	m := NewMasker(&out, toBytes([]string{"hunter22"}))
	m.Delay = 5 * time.Millisecond
	defer m.Close()
	m.Write([]byte("prompt: hunt"))
	waitFor(t, 5*time.Second, func() bool { return out.String() == "prompt: hunt" })
	// The stream goes on normally after a timed release.
	m.Write([]byte(" hunter22\n"))
	if got, want := out.String(), "prompt: hunt *****\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestMaskTimerWaitsForWrites(t *testing.T) {
	t.Parallel()
	var out recorder
	m := NewMasker(&out, toBytes([]string{"hunter22"}))
	m.Delay = time.Hour
	defer m.Close()
	m.Write([]byte("pw: hunt"))
	time.Sleep(20 * time.Millisecond)
	m.Write([]byte("er22\n"))
	if got, want := out.String(), "pw: *****\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestMaskFlush(t *testing.T) {
	t.Parallel()
	var out recorder
	m := NewMasker(&out, toBytes([]string{"abcd", "abcdefgh"}))
	m.Delay = -1
	m.Write([]byte("abcdef"))
	if got := out.String(); got != "" {
		t.Fatalf("before Flush: got %q, want nothing", got)
	}
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "*****ef"; got != want {
		t.Errorf("after Flush: got %q, want %q", got, want)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestMaskWriteErrorSticky(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	for _, secrets := range [][]string{nil, {"hunter22"}} {
		m := NewMasker(failWriter{boom}, toBytes(secrets))
		if _, err := m.Write([]byte("hello\n")); !errors.Is(err, boom) {
			t.Errorf("secrets %q: Write error = %v, want %v", secrets, err, boom)
		}
		if _, err := m.Write([]byte("again\n")); !errors.Is(err, boom) {
			t.Errorf("secrets %q: second Write error = %v, want %v", secrets, err, boom)
		}
	}
}

func TestMaskRandomAgainstReference(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	// A tiny alphabet makes overlaps and near misses common.
	word := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abc\n"[r.IntN(4)]
		}
		return b
	}
	for iter := 0; iter < 2000; iter++ {
		var secrets [][]byte
		for range r.IntN(5) + 1 {
			secrets = append(secrets, word(r.IntN(8)+1))
		}
		in := word(r.IntN(80))
		want := maskNaive(in, maskPatterns(secrets))
		var out bytes.Buffer
		m := NewMasker(&out, secrets)
		m.Delay = -1
		for rest := in; len(rest) > 0; {
			n := min(len(rest), r.IntN(10)+1)
			m.Write(rest[:n])
			rest = rest[n:]
		}
		m.Close()
		if !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("secrets %q, input %q:\ngot  %q\nwant %q", secrets, in, out.Bytes(), want)
		}
	}
}

// FuzzMask checks the Masker against the reference for any secrets, input
// and chunking of the input into writes. secrets is split at '|'; each byte
// of cuts is the length of the next write.
func FuzzMask(f *testing.F) {
	f.Add([]byte("hunter22"), []byte("pw=hunter22\n"), []byte{3, 5})
	f.Add([]byte("abcd|abcdefgh"), []byte("abcdefg"), []byte{1, 1, 1})
	f.Fuzz(func(t *testing.T, secretList, in, cuts []byte) {
		secrets := bytes.Split(secretList, []byte("|"))
		pats := maskPatterns(secrets)
		var out bytes.Buffer
		m := NewMasker(&out, secrets)
		m.Delay = -1
		rest := in
		for _, c := range cuts {
			n := min(len(rest), int(c))
			if _, err := m.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if _, err := m.Write(rest); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		got := out.Bytes()

		occurs := false
		for _, p := range pats {
			occurs = occurs || bytes.Contains(in, p)
		}
		if !occurs && !bytes.Equal(got, in) {
			t.Fatalf("no secret in input, output differs:\nin  %q\nout %q", in, got)
		}
		if want := maskNaive(in, pats); !bytes.Equal(got, want) {
			t.Fatalf("secrets %q, input %q, cuts %v:\ngot  %q\nwant %q", secrets, in, cuts, got, want)
		}
	})
}

// benchSecrets returns 50 secrets of 16 to 64 random bytes.
func benchSecrets(r *rand.Rand) [][]byte {
	secrets := make([][]byte, 50)
	for i := range secrets {
		secrets[i] = make([]byte, 16+r.IntN(49))
		for j := range secrets[i] {
			secrets[i][j] = byte(r.Uint32())
		}
	}
	return secrets
}

// benchText returns n bytes of log-like ASCII lines.
func benchText(r *rand.Rand, n int) []byte {
	words := []string{"epoch", "loss=0.2341", "step", "INFO", "train.py:42", "accuracy", "lr=3e-4", "batch", "gpu0", "2024-05-01T12:00:00Z", "saving", "checkpoint", "/mnt/data/shard-0001.parquet"}
	var b bytes.Buffer
	for b.Len() < n {
		for range 8 + r.IntN(8) {
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(' ')
		}
		b.WriteByte('\n')
	}
	return b.Bytes()[:n]
}

// BenchmarkMask measures masking throughput with 50 secrets of 16 to 64
// random bytes. Run: go test -run '^$' -bench Mask ./launcher/
func BenchmarkMask(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 7))
	secrets := benchSecrets(r)
	text := benchText(r, 1<<20)
	random := make([]byte, 1<<20)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	withHits := bytes.Clone(text)
	for off := 0; off+64 < len(withHits); off += 4096 {
		copy(withHits[off:], secrets[off/4096%len(secrets)])
	}
	// Worst case: output made of the start of a pattern over and over, so
	// the prefilter passes every position and each one is verified.
	dashes := bytes.Repeat([]byte(strings.Repeat("-", 79)+"\n"), 1<<20/80)
	withPEM := append(secrets[:len(secrets):len(secrets)],
		[]byte("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"))

	cases := []struct {
		name    string
		secrets [][]byte
		data    []byte
		chunk   int // 0: one write per line
	}{
		{"text/32KiB-writes", secrets, text, 32 << 10},
		{"text/line-writes", secrets, text, 0},
		{"random/32KiB-writes", secrets, random, 32 << 10},
		{"secret-every-4KiB/32KiB-writes", secrets, withHits, 32 << 10},
		{"worst-case-dashes-vs-PEM/32KiB-writes", withPEM, dashes, 32 << 10},
	}
	for _, c := range cases {
		var chunks [][]byte
		if c.chunk == 0 {
			chunks = bytes.SplitAfter(c.data, []byte("\n"))
		} else {
			for off := 0; off < len(c.data); off += c.chunk {
				chunks = append(chunks, c.data[off:min(off+c.chunk, len(c.data))])
			}
		}
		b.Run(c.name, func(b *testing.B) {
			m := NewMasker(io.Discard, c.secrets)
			m.Delay = -1
			b.SetBytes(int64(len(c.data)))
			b.ReportAllocs()
			for b.Loop() {
				for _, ch := range chunks {
					m.Write(ch)
				}
			}
			m.Close()
		})
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
