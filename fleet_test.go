//go:build unix

package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runsecrets/runsecrets/runctx/azuretest"
)

// The fleet's shape. The defaults are issue 6's case: a 256-node job, 20
// secrets each, against Key Vault's limit (4,000 GETs per 10 s) scaled down
// ten times in time. Smaller runs are quick:
//
//	go test -run '^$' -bench Fleet -benchtime 1x -fleet.k 32 -fleet.r 100 .
var (
	fleetK       = flag.Int("fleet.k", 256, "BenchmarkFleet: runsecrets processes started at once")
	fleetM       = flag.Int("fleet.m", 20, "BenchmarkFleet: secrets each process maps")
	fleetR       = flag.Int("fleet.r", 400, "BenchmarkFleet: secret GETs the vault serves per window")
	fleetW       = flag.Duration("fleet.w", time.Second, "BenchmarkFleet: the vault's throttling window")
	fleetTimeout = flag.Duration("fleet.timeout", 60*time.Second, "BenchmarkFleet: each process's --timeout")
)

// BenchmarkFleet starts K `runsecrets exec` processes at once, each mapping
// the same M secrets of one vault that serves R secret GETs per window W and
// answers 429 beyond that, and measures how the fleet gets through. Each
// child checks the SHA-256 of all its values against the expected one (no
// value is printed or passed in argv); any process that does not exit 0 fails
// the benchmark. Sub-benchmarks throttle without and with Retry-After (real
// Key Vault 429s were seen both ways). Per iteration it reports:
//
//	wall-s     from the first start to the last exit
//	min-s      the theoretical minimum, K×M/R windows
//	ratio      wall-s / min-s (target: at most 1.5)
//	429s       throttled answers the vault served
//	requests   every vault request (K challenges included)
//	retries    "retrying" debug lines, all processes; retries-max for the
//	           worst one, procs-retried how many processes retried at all
//	p50-s, max-s  per-process wall time
//	cpu-ours-s    CPU time of the fleet and of the fake Azure
//	cpu-others-s  CPU time of everything else on the machine meanwhile
//
// The K=256 run needs about 15 s, a few GB of memory and both cores. Other
// work on the machine starves the fleet of CPU and spoils the figures: trust
// a run whose cpu-others-s is a few seconds at most, and rerun the others.
//
//	go test -run '^$' -bench Fleet -benchtime 1x -timeout 30m .
func BenchmarkFleet(b *testing.B) {
	bin := buildStatic(b)
	if _, err := exec.LookPath("sha256sum"); err != nil {
		b.Skip("the children need sha256sum")
	}
	for _, retryAfter := range []bool{false, true} {
		b.Run(fmt.Sprintf("retry-after=%v", retryAfter), func(b *testing.B) {
			f := fleet{bin: bin, k: *fleetK, m: *fleetM, r: *fleetR, w: *fleetW, timeout: *fleetTimeout, retryAfter: retryAfter}
			var sum fleetResult
			n := 0
			for range b.N {
				r := f.run(b)
				sum.add(r)
				n++
			}
			sum.report(b, n, f.minimum())
		})
	}
}

// fleet is one benchmark configuration.
type fleet struct {
	bin        string
	k, m, r    int
	w, timeout time.Duration
	retryAfter bool
}

// minimum is the least time the vault's limit allows for K×M GETs.
func (f fleet) minimum() time.Duration {
	return time.Duration(float64(f.k*f.m) / float64(f.r) * float64(f.w))
}

// fleetResult accumulates the figures of one or more runs.
type fleetResult struct {
	wall, p50, slowest      time.Duration
	throttled, requests     int
	retries, retriesMax     int
	processes, retriedProcs int
	// CPU time of the fleet and of this process, and of everything else
	// that ran on the machine meanwhile: other work disturbs the figures.
	cpuOurs, cpuOthers time.Duration
}

func (s *fleetResult) add(r fleetResult) {
	s.wall += r.wall
	s.p50 += r.p50
	s.slowest += r.slowest
	s.throttled += r.throttled
	s.requests += r.requests
	s.retries += r.retries
	s.retriesMax = max(s.retriesMax, r.retriesMax)
	s.processes += r.processes
	s.retriedProcs += r.retriedProcs
	s.cpuOurs += r.cpuOurs
	s.cpuOthers += r.cpuOthers
}

func (s fleetResult) report(b *testing.B, runs int, minimum time.Duration) {
	if runs == 0 {
		return
	}
	n := float64(runs)
	wall := s.wall.Seconds() / n
	b.ReportMetric(wall, "wall-s")
	b.ReportMetric(minimum.Seconds(), "min-s")
	b.ReportMetric(wall/minimum.Seconds(), "ratio")
	b.ReportMetric(float64(s.throttled)/n, "429s")
	b.ReportMetric(float64(s.requests)/n, "requests")
	b.ReportMetric(float64(s.retries)/n, "retries")
	b.ReportMetric(float64(s.retriesMax), "retries-max")
	b.ReportMetric(float64(s.retriedProcs)/n, "procs-retried")
	b.ReportMetric(s.p50.Seconds()/n, "p50-s")
	b.ReportMetric(s.slowest.Seconds()/n, "max-s")
	b.ReportMetric(s.cpuOurs.Seconds()/n, "cpu-ours-s")
	b.ReportMetric(s.cpuOthers.Seconds()/n, "cpu-others-s")
	// The benchmark framework's own ns/op says nothing more than wall-s.
	b.ReportMetric(0, "ns/op")
}

// run starts the fleet once against a fresh fake Azure and waits for every
// process. Any process that fails, or whose child saw a wrong value, fails b.
func (f fleet) run(b *testing.B) fleetResult {
	az, err := azuretest.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer az.Close()
	dir := b.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := az.WriteCA(ca); err != nil {
		b.Fatal(err)
	}
	const client, secret = "fleet-app", "fleet-sp-password"
	az.AddClient(azuretest.DefaultTenant, client, secret)

	// M secrets of random values; the children hash them in mapping order.
	args := []string{"--log-level", "debug", "--timeout", f.timeout.String(), "exec"}
	var script strings.Builder
	script.WriteString(`[ "$(printf '%s\n'`)
	h := sha256.New()
	for i := range f.m {
		name, env := fmt.Sprintf("fleet-secret-%02d", i), fmt.Sprintf("S%02d", i)
		value := "fleet-value-" + rand.Text()
		az.Vaults.Set("fleetvault", name, value)
		fmt.Fprintf(h, "%s\n", value)
		args = append(args, "--map", env+"="+name)
		fmt.Fprintf(&script, ` "$%s"`, env)
	}
	want := hex.EncodeToString(h.Sum(nil)) + "  -"
	script.WriteString(` | sha256sum)" = "$1" ] || { echo 'the child got a wrong value' >&2; exit 3; }`)
	args = append(args, "--", "sh", "-c", script.String(), "sh", want)

	env := append(fleetEnviron(), az.Env(ca)...)
	env = append(env,
		"AZURE_TENANT_ID="+azuretest.DefaultTenant, "AZURE_CLIENT_ID="+client, "AZURE_CLIENT_SECRET="+secret,
		"RUNSECRETS_VAULT_URL=https://fleetvault.vault.azure.net")

	b.Logf("K=%d M=%d R=%d W=%v retry-after=%v; load before: %s", f.k, f.m, f.r, f.w, f.retryAfter, loadavg())
	type outcome struct {
		took   time.Duration
		err    error
		stderr bytes.Buffer
	}
	out := make([]outcome, f.k)
	cmds := make([]*exec.Cmd, f.k)
	for i := range cmds {
		cmds[i] = exec.Command(f.bin, args...)
		cmds[i].Env = env
		cmds[i].Stderr = &out[i].stderr
	}
	az.Reset()
	az.Vaults.SetThrottle(f.r, f.w, f.retryAfter)
	cpu0, self0 := machineBusy(), selfCPU()
	start := time.Now()
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			out[i].err = err
			continue
		}
		wg.Go(func() {
			out[i].err = cmd.Wait()
			out[i].took = time.Since(start)
		})
	}
	wg.Wait()
	wall := time.Since(start)
	busy, self := machineBusy()-cpu0, selfCPU()-self0
	st := az.Vaults.Stats()
	ours := self
	for _, cmd := range cmds {
		if ps := cmd.ProcessState; ps != nil {
			ours += ps.UserTime() + ps.SystemTime()
		}
	}
	b.Logf("load after: %s; CPU busy %.1fs of %.1fs (2 cores), ours %.1fs, others' %.1fs",
		loadavg(), busy.Seconds(), 2*wall.Seconds(), ours.Seconds(), max(busy-ours, 0).Seconds())

	r := fleetResult{wall: wall, throttled: st.Throttled, requests: st.Requests, processes: f.k,
		cpuOurs: ours, cpuOthers: max(busy-ours, 0)}
	var took []time.Duration
	var failed []string
	timedOut := 0
	for i, o := range out {
		n := bytes.Count(o.stderr.Bytes(), []byte("debug: retrying "))
		r.retries += n
		r.retriesMax = max(r.retriesMax, n)
		if n > 0 {
			r.retriedProcs++
		}
		took = append(took, o.took)
		if ee := (*exec.ExitError)(nil); errors.As(o.err, &ee) && ee.ExitCode() == exitUnavailable {
			timedOut++
		}
		if o.err != nil {
			failed = append(failed, fmt.Sprintf("process %d: %v: %s", i, o.err, lastErrors(o.stderr.String())))
		}
	}
	slices.Sort(took)
	r.p50, r.slowest = took[len(took)/2], took[len(took)-1]
	if len(failed) > 0 {
		b.Fatalf("%d of %d processes failed, %d of them with 100 (timeout or vault unavailable); first ones:\n%s",
			len(failed), f.k, timedOut, strings.Join(failed[:min(len(failed), 5)], "\n"))
	}
	return r
}

// fleetEnviron is this process's environment without anything that would
// choose another identity, vault or mapping for the fleet's processes.
func fleetEnviron() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "AZURE_"), strings.HasPrefix(k, "RUNSECRETS_"), strings.HasPrefix(k, "MSI_"),
			strings.HasPrefix(k, "AZUREML_"), strings.HasPrefix(k, "IDENTITY_"), k == "MLFLOW_TRACKING_URI":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// lastErrors keeps the error lines of a process's stderr, which is full of
// debug records.
func lastErrors(stderr string) string {
	var keep []string
	for line := range strings.SplitSeq(stderr, "\n") {
		if strings.Contains(line, "error:") || strings.Contains(line, "wrong value") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, " | ")
}

// machineBusy is the CPU time all cores spent on anything but idling, from
// /proc/stat (zero where there is none).
func machineBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var busy int64
	for i, f := range fields[1:] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || i >= 8 {
			break
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

// selfCPU is this process's CPU time: the fake Azure's share.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadavg is /proc/loadavg, to judge whether other work disturbed a run.
func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(data))
}
