//go:build unix

package launcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// superviseHelper runs in a helper process: it calls Supervise with a
// /bin/sh -c child as the entrypoint would, then reports the result and
// any zombie children it left behind.
func superviseHelper(cfg helperConfig) int {
	var onExit atomic.Int32
	spec := RunSpec{
		Argv:      []string{"/bin/sh", "-c", cfg.Script},
		Env:       cfg.Env,
		Grace:     time.Duration(cfg.GraceMS) * time.Millisecond,
		MaskDelay: time.Duration(cfg.MaskDelayMS) * time.Millisecond,
		Stdin:     os.Stdin,
		Stdout:    os.Stdout,
		Stderr:    os.Stderr,
		OnExit:    func() { onExit.Add(1) },
	}
	for _, m := range cfg.Mask {
		spec.Mask = append(spec.Mask, []byte(m))
	}
	var shared lockedBuffer
	if cfg.SharedBuffer {
		spec.Stdout, spec.Stderr = &shared, &shared
	}
	ctx := context.Background()
	if cfg.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(cfg.TimeoutMS)*time.Millisecond)
		defer cancel()
	}

	code, err := Supervise(ctx, spec)

	res := helperResult{Pid: os.Getpid(), Code: code, OnExitCalls: int(onExit.Load())}
	if err != nil {
		res.Err = err.Error()
	}
	res.Zombies = zombieChildren(os.Getpid())
	res.StdoutLink, _ = os.Readlink("/proc/self/fd/1")
	res.Pgrp = syscall.Getpgrp()
	res.ForegroundAfter, _ = unix.IoctlGetInt(0, unix.TIOCGPGRP)
	if cfg.SharedBuffer {
		os.Stdout.Write(shared.Bytes())
	}
	b, _ := json.Marshal(res)
	if err := os.WriteFile(cfg.Result, b, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 3
	}
	return 0
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// zombieChildren lists the zombie processes whose parent is ppid, from
// /proc (empty where there is no /proc).
func zombieChildren(ppid int) []int {
	var zombies []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // exited meanwhile
		}
		// "pid (comm) state ppid ...": comm may hold spaces and parens.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[0] != "Z" {
			continue
		}
		if p, _ := strconv.Atoi(f[1]); p == ppid {
			pid, _ := strconv.Atoi(strings.Fields(s)[0])
			zombies = append(zombies, pid)
		}
	}
	return zombies
}

// superviseRun is a running supervise helper.
type superviseRun struct {
	t      testing.TB
	cmd    *exec.Cmd
	dir    string
	stdout lockedBuffer
	stderr lockedBuffer
	done   chan struct{} // closed when the helper has been waited for
	err    error         // from Wait, once done is closed
}

// startSupervise starts a helper that supervises script. The child's
// environment has PATH and DIR, a private directory for files the script
// and the test share.
func startSupervise(t testing.TB, cfg helperConfig) *superviseRun {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the supervise helpers rely on /proc")
	}
	r := &superviseRun{t: t, dir: t.TempDir(), done: make(chan struct{})}
	cfg.Mode = "supervise"
	cfg.Env = append([]string{"PATH=/usr/bin:/bin", "DIR=" + r.dir}, cfg.Env...)
	cfg.Result = filepath.Join(r.dir, "result.json")
	r.cmd = helperCommand(t, cfg)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	// The child is in its own process group and outlives a killed helper;
	// do not wait for it to close the output pipes.
	r.cmd.WaitDelay = 5 * time.Second
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			r.cmd.Process.Kill()
			<-r.done
		}
		// A script that records its PID is its process group's leader;
		// kill what a failed test left behind.
		if b, err := os.ReadFile(filepath.Join(r.dir, "pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	})
	return r
}

// waitFile waits until the script has created name in DIR.
func (r *superviseRun) waitFile(name string) {
	r.t.Helper()
	waitFor(r.t, 15*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(r.dir, name))
		return err == nil
	})
}

// readFile returns the content of name in DIR.
func (r *superviseRun) readFile(name string) string {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}

func (r *superviseRun) signal(sig syscall.Signal) {
	r.t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("signal helper: %v", err)
	}
}

// result waits for the helper to finish and returns what it reported.
func (r *superviseRun) result() helperResult {
	r.t.Helper()
	select {
	case <-r.done:
		if r.err != nil {
			r.t.Fatalf("helper: %v\nstderr:\n%s", r.err, r.stderr.Bytes())
		}
	case <-time.After(20 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
		r.t.Fatalf("helper did not finish\nstderr:\n%s", r.stderr.Bytes())
	}
	b, err := os.ReadFile(filepath.Join(r.dir, "result.json"))
	if err != nil {
		r.t.Fatalf("helper result: %v\nstderr:\n%s", err, r.stderr.Bytes())
	}
	var res helperResult
	if err := json.Unmarshal(b, &res); err != nil {
		r.t.Fatal(err)
	}
	if res.OnExitCalls != 1 {
		r.t.Errorf("OnExit called %d times, want 1", res.OnExitCalls)
	}
	if len(res.Zombies) > 0 {
		r.t.Errorf("zombie children left: %v", res.Zombies)
	}
	return res
}

func TestSuperviseExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script string
		want   int
	}{
		{name: "exit 0", script: "exit 0", want: 0},
		{name: "exit 1", script: "exit 1", want: 1},
		{name: "exit 7", script: "exit 7", want: 7},
		{name: "exit 255", script: "exit 255", want: 255},
		{name: "killed by SIGKILL", script: "kill -KILL $$", want: 128 + 9},
		{name: "killed by SIGTERM", script: "kill -TERM $$", want: 128 + 15},
		{name: "killed by SIGSEGV", script: "kill -SEGV $$", want: 128 + 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := startSupervise(t, helperConfig{Script: tt.script}).result()
			if res.Code != tt.want || res.Err != "" {
				t.Errorf("Supervise = %d, %q; want %d", res.Code, res.Err, tt.want)
			}
		})
	}
}

func TestSuperviseForwardsSIGTERM(t *testing.T) {
	t.Parallel()
	r := startSupervise(t, helperConfig{
		GraceMS: 60_000,
		Script: `trap 'echo term >> "$DIR/log"; exit 0' TERM
			echo $$ > "$DIR/pid"; touch "$DIR/ready"
			while :; do sleep 0.05; done`,
	})
	r.waitFile("ready")
	r.signal(syscall.SIGTERM)
	res := r.result()
	if res.Code != 0 || res.Err != "" {
		t.Errorf("Supervise = %d, %q; want 0", res.Code, res.Err)
	}
	if got := r.readFile("log"); got != "term\n" {
		t.Errorf("child log = %q, want %q", got, "term\n")
	}
}

func TestSuperviseGraceThenSIGKILL(t *testing.T) {
	t.Parallel()
	r := startSupervise(t, helperConfig{
		GraceMS: 200,
		Script: `trap '' TERM INT
			echo $$ > "$DIR/pid"; touch "$DIR/ready"
			while :; do sleep 0.05; done`,
	})
	r.waitFile("ready")
	r.signal(syscall.SIGINT)
	if res := r.result(); res.Code != 128+9 {
		t.Errorf("Supervise = %d, %q; want %d", res.Code, res.Err, 128+9)
	}
}

func TestSuperviseContextDoneTerminates(t *testing.T) {
	t.Parallel()
	r := startSupervise(t, helperConfig{
		TimeoutMS: 300,
		GraceMS:   60_000,
		Script: `trap 'exit 3' TERM
			while :; do sleep 0.05; done`,
	})
	if res := r.result(); res.Code != 3 {
		t.Errorf("Supervise = %d, %q; want 3", res.Code, res.Err)
	}
}

func TestSuperviseForwardsEachSignalOnce(t *testing.T) {
	t.Parallel()
	r := startSupervise(t, helperConfig{
		GraceMS: 60_000,
		Script: `for s in USR1 USR2 HUP WINCH QUIT; do trap "echo $s >> \"\$DIR/log\"" $s; done
			trap 'exit 0' TERM
			echo $$ > "$DIR/pid"; touch "$DIR/ready"
			while :; do sleep 0.05; done`,
	})
	r.waitFile("ready")
	sent := []syscall.Signal{syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGHUP, syscall.SIGWINCH, syscall.SIGQUIT}
	var want []string
	for _, sig := range sent {
		r.signal(sig)
		want = append(want, strings.TrimPrefix(strings.ToUpper(sigName(sig)), "SIG"))
		// One at a time: two pending instances of a signal would merge.
		waitFor(t, 15*time.Second, func() bool {
			b, _ := os.ReadFile(filepath.Join(r.dir, "log"))
			return strings.Count(string(b), "\n") >= len(want)
		})
	}
	r.signal(syscall.SIGTERM)
	if res := r.result(); res.Code != 0 {
		t.Errorf("Supervise = %d, %q; want 0", res.Code, res.Err)
	}
	got := strings.Fields(r.readFile("log"))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("signals the child trapped (-want +got):\n%s", diff)
	}
}

func sigName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGUSR1:
		return "USR1"
	case syscall.SIGUSR2:
		return "USR2"
	case syscall.SIGHUP:
		return "HUP"
	case syscall.SIGWINCH:
		return "WINCH"
	case syscall.SIGQUIT:
		return "QUIT"
	}
	return sig.String()
}

func TestSuperviseReapsOrphans(t *testing.T) {
	t.Parallel()
	// The subshell starts a sleep and exits at once, orphaning it. The
	// orphan must be re-parented to the supervisor, and reaped when it
	// ends: its /proc entry (which a zombie keeps) disappears.
	r := startSupervise(t, helperConfig{Script: `(sleep 1 & echo $! > "$DIR/orphan")
		orphan=$(cat "$DIR/orphan")
		cut -d' ' -f4 /proc/$orphan/stat > "$DIR/ppid"
		i=0
		while [ -e /proc/$orphan ]; do
			i=$((i+1)); [ $i -gt 300 ] && exit 99
			sleep 0.05
		done
		exit 0`})
	res := r.result()
	if res.Code != 0 {
		t.Errorf("Supervise = %d, %q; want 0 (99: the orphan was not reaped)", res.Code, res.Err)
	}
	if got := strings.TrimSpace(r.readFile("ppid")); got != strconv.Itoa(res.Pid) {
		t.Errorf("orphan's parent = %s, want the supervisor %d", got, res.Pid)
	}
}

func TestSuperviseMasksSplitSecret(t *testing.T) {
	t.Parallel()
	r := startSupervise(t, helperConfig{
		Mask:        []string{"s3cr3t-value", "line-two-of-pem"},
		MaskDelayMS: 60_000,
		Script: `printf 's3cr3t'; sleep 0.2; printf -- '-value and more\n'
			printf 'err: s3cr3t-value\nline-two-of-pem\n' >&2
			printf 'tail s3cr'`,
	})
	res := r.result()
	if res.Code != 0 {
		t.Errorf("Supervise = %d, %q; want 0", res.Code, res.Err)
	}
	if got, want := string(r.stdout.Bytes()), "***** and more\ntail s3cr"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
	if got, want := string(r.stderr.Bytes()), "err: *****\n*****\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}

func TestSuperviseSharedWriterKeepsOrder(t *testing.T) {
	t.Parallel()
	r := startSupervise(t, helperConfig{
		Mask:         []string{"hunter22"},
		SharedBuffer: true,
		Script:       `echo one; echo two hunter22 >&2; echo three`,
	})
	if res := r.result(); res.Code != 0 {
		t.Errorf("Supervise = %d, %q; want 0", res.Code, res.Err)
	}
	if got, want := string(r.stdout.Bytes()), "one\ntwo *****\nthree\n"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
}

func TestSupervisePassesFilesThrough(t *testing.T) {
	t.Parallel()
	r := startSupervise(t, helperConfig{Script: `readlink /proc/$$/fd/1`})
	res := r.result()
	if got := strings.TrimSpace(string(r.stdout.Bytes())); got != res.StdoutLink || got == "" {
		t.Errorf("child's stdout is %q, helper's is %q; want the same file", got, res.StdoutLink)
	}
}

func TestSuperviseStartErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "plain"), "#!/bin/sh\n", 0o644)
	tests := []struct {
		name string
		argv []string
		want StartErrorKind
	}{
		{name: "not found", argv: []string{"no-such-command-xyz"}, want: CommandNotFound},
		{name: "not executable", argv: []string{filepath.Join(dir, "plain")}, want: CommandNotExecutable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// These fail before anything is started or any signal is
			// caught, so they can run in the test process.
			calls := 0
			code, err := Supervise(context.Background(), RunSpec{
				Argv:   tt.argv,
				Env:    []string{"PATH=" + dir},
				OnExit: func() { calls++ },
			})
			var se *StartError
			if !errors.As(err, &se) || se.Kind != tt.want {
				t.Fatalf("Supervise = %d, %v; want a %v *StartError", code, err, tt.want)
			}
			if calls != 1 {
				t.Errorf("OnExit called %d times, want 1", calls)
			}
		})
	}
}

func TestSuperviseCanceledBeforeStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	_, err := Supervise(ctx, RunSpec{Argv: []string{"/bin/true"}, OnExit: func() { calls++ }})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Supervise error = %v, want context.Canceled", err)
	}
	if calls != 1 {
		t.Errorf("OnExit called %d times, want 1", calls)
	}
}
