package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// buildStatic builds the release binary (static, stripped) into a temp dir.
func buildStatic(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "runsecrets")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// run runs argv and returns its wall time.
func run(tb testing.TB, argv ...string) time.Duration {
	tb.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("%v: %v\n%s", argv, err, out)
	}
	return time.Since(start)
}

// peakRSS runs argv under GNU time and returns its peak RSS in KiB, or 0
// when GNU time is missing. Go starts children with vfork semantics, so the
// rusage Go itself reports would count the test process's own memory.
func peakRSS(tb testing.TB, argv ...string) int64 {
	tb.Helper()
	if _, err := os.Stat("/usr/bin/time"); err != nil {
		return 0
	}
	out, err := exec.Command("/usr/bin/time", append([]string{"-f", "%M"}, argv...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%v: %v\n%s", argv, err, out)
	}
	fields := strings.Fields(string(out))
	kb, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
	if err != nil {
		tb.Fatalf("GNU time said %q", out)
	}
	return kb
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkOfflineExec measures the offline exec against its floor, in the
// same run, alternating the two commands so load affects both alike:
//
//	runsecrets exec --secrets-file F --map A -- true
//	env A=x true
//
// It reports the median wall time of each (use -benchtime=50x or more for
// at least 20 runs), their ratio (target: at most 2.5), the static binary's
// size (target: under 15 MB), the exec's peak RSS (target: under 20 MB),
// and what supervise mode adds to the same run (target: under 1 ms).
//
//	go test -run '^$' -bench OfflineExec -benchtime 100x .
func BenchmarkOfflineExec(b *testing.B) {
	bin := buildStatic(b)
	envBin, err := exec.LookPath("env")
	if err != nil {
		b.Skip("no env program")
	}
	secrets := filepath.Join(b.TempDir(), "secrets.env")
	if err := os.WriteFile(secrets, []byte("A=x\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	argv := []string{bin, "exec", "--secrets-file", secrets, "--map", "A", "--", "true"}
	supervised := []string{bin, "exec", "--supervise", "--secrets-file", secrets, "--map", "A", "--", "true"}
	var ours, sup, floor []time.Duration
	for b.Loop() {
		ours = append(ours, run(b, argv...))
		sup = append(sup, run(b, supervised...))
		floor = append(floor, run(b, envBin, "A=x", "true"))
	}
	rss := peakRSS(b, argv...)
	mo, mf := median(ours), median(floor)
	b.ReportMetric(float64(mo.Microseconds())/1000, "exec-ms")
	b.ReportMetric(float64(mf.Microseconds())/1000, "env-ms")
	b.ReportMetric(float64(mo)/float64(mf), "ratio")
	b.ReportMetric(float64((median(sup)-mo).Microseconds())/1000, "supervise-extra-ms")
	b.ReportMetric(float64(fi.Size())/(1<<20), "binary-MiB")
	if rss > 0 {
		b.ReportMetric(float64(rss)/1024, "peak-RSS-MiB")
	}
}
