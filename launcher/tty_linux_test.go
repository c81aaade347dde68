package launcher

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns the master and slave ends of a new pseudo-terminal, or
// skips the test where none can be had.
func openPTY(t testing.TB) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pty slave: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	// Whatever the terminal echoes must be read, or a full buffer would
	// block the writers.
	go io.Copy(io.Discard, m)
	return m, s
}

// startOnTerminal starts a helper as the leader of a new session whose
// controlling terminal is the pty slave, as a login shell would be.
func startOnTerminal(t testing.TB, slave *os.File, cfg helperConfig) (*exec.Cmd, string) {
	t.Helper()
	dir := t.TempDir()
	cfg.Result = filepath.Join(dir, "result.json")
	for c := &cfg; c != nil; c = c.Job {
		c.Env = append([]string{"PATH=/usr/bin:/bin", "DIR=" + dir}, c.Env...)
		if c.Result == "" {
			c.Result = filepath.Join(dir, "job-result.json")
		}
	}
	cmd := helperCommand(t, cfg)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if b, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil {
			var pid int
			if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 1 {
				syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	})
	return cmd, dir
}

func readResult(t testing.TB, path string) helperResult {
	t.Helper()
	waitFor(t, 20*time.Second, func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
	// The helper writes the file in one go, but it may not be complete
	// at the moment it appears.
	var res helperResult
	waitFor(t, 5*time.Second, func() bool {
		b, err := os.ReadFile(path)
		return err == nil && json.Unmarshal(b, &res) == nil
	})
	return res
}

// TestSuperviseTerminalForeground runs Supervise on a terminal: the child
// must be the foreground group, so Ctrl-C reaches it exactly once without
// passing through the supervisor, and the terminal must come back to the
// supervisor's group afterwards.
func TestSuperviseTerminalForeground(t *testing.T) {
	t.Parallel()
	master, slave := openPTY(t)
	_, dir := startOnTerminal(t, slave, helperConfig{
		Mode:    "supervise",
		GraceMS: 60_000,
		Script: `echo $$ > "$DIR/pid"
			cut -d' ' -f5,8 /proc/$$/stat > "$DIR/groups"
			trap 'echo INT >> "$DIR/log"; exit 5' INT
			touch "$DIR/ready"
			while :; do sleep 0.05; done`,
	})
	waitFor(t, 20*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "ready"))
		return err == nil
	})
	if _, err := master.Write([]byte{3}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	res := readResult(t, filepath.Join(dir, "result.json"))
	if res.Code != 5 || res.Err != "" {
		t.Errorf("Supervise = %d, %q; want 5", res.Code, res.Err)
	}
	groups, _ := os.ReadFile(filepath.Join(dir, "groups"))
	pid, _ := os.ReadFile(filepath.Join(dir, "pid"))
	f := strings.Fields(string(groups))
	if len(f) != 2 || f[0] != strings.TrimSpace(string(pid)) || f[1] != f[0] {
		t.Errorf("child pid %s had process group and terminal foreground group %q; want both its pid", pid, groups)
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "log")); string(log) != "INT\n" {
		t.Errorf("child trapped %q, want one INT", log)
	}
	if res.ForegroundAfter != res.Pgrp {
		t.Errorf("foreground group after Supervise = %d, want the supervisor's %d", res.ForegroundAfter, res.Pgrp)
	}
}

// TestSuperviseChildStopsWithoutShell: a stopped child is continued when
// no job-control shell can continue the supervisor (here the supervisor
// leads its own session, so its group is orphaned and ignores SIGTSTP,
// just as PID 1 would).
func TestSuperviseChildStopsWithoutShell(t *testing.T) {
	t.Parallel()
	_, slave := openPTY(t)
	_, dir := startOnTerminal(t, slave, helperConfig{
		Mode:   "supervise",
		Script: `kill -TSTP $$; echo resumed > "$DIR/log"; exit 4`,
	})
	res := readResult(t, filepath.Join(dir, "result.json"))
	if res.Code != 4 || res.Err != "" {
		t.Errorf("Supervise = %d, %q; want 4", res.Code, res.Err)
	}
	if res.ForegroundAfter != res.Pgrp {
		t.Errorf("foreground group after Supervise = %d, want the supervisor's %d", res.ForegroundAfter, res.Pgrp)
	}
}

// TestSuperviseChildStopsUnderShell: under a job-control shell (a session
// helper that runs the supervisor as its foreground job), a stopped child
// stops the supervisor, and "fg" resumes both.
func TestSuperviseChildStopsUnderShell(t *testing.T) {
	t.Parallel()
	_, slave := openPTY(t)
	_, dir := startOnTerminal(t, slave, helperConfig{
		Mode: "session",
		Job: &helperConfig{
			Mode:   "supervise",
			Script: `kill -TSTP $$; echo resumed > "$DIR/log"; exit 4`,
		},
	})
	shell := readResult(t, filepath.Join(dir, "result.json"))
	if shell.Stops != 1 {
		t.Errorf("the shell saw its job stop %d times, want 1", shell.Stops)
	}
	if shell.Code != 0 {
		t.Errorf("supervise helper exited %d, want 0", shell.Code)
	}
	job := readResult(t, filepath.Join(dir, "job-result.json"))
	if job.Code != 4 || job.Err != "" {
		t.Errorf("Supervise = %d, %q; want 4", job.Code, job.Err)
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "log")); string(log) != "resumed\n" {
		t.Errorf("child log = %q, want it resumed", log)
	}
}

// sessionHelper plays a job-control shell: it runs its Job as a
// foreground job in a process group of its own, and when the job stops,
// takes the terminal back and then continues the job in the foreground,
// as "fg" would.
func sessionHelper(cfg helperConfig) int {
	b, _ := json.Marshal(cfg.Job)
	env := []string{"GORACE=atexit_sleep_ms=0"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, helperEnv+"=") {
			env = append(env, kv)
		}
	}
	env = append(env, helperEnv+"="+string(b))
	pid, err := syscall.ForkExec(os.Args[0], []string{os.Args[0]}, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Foreground: true, Ctty: 0},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "session helper:", err)
		return 3
	}
	var res helperResult
	for {
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, syscall.WUNTRACED, nil); err != nil {
			if err == syscall.EINTR {
				continue
			}
			fmt.Fprintln(os.Stderr, "session helper: wait:", err)
			return 3
		}
		if ws.Stopped() {
			res.Stops++
			setForeground(0, syscall.Getpgrp())
			time.Sleep(10 * time.Millisecond) // "fg" comes a little later
			setForeground(0, pid)
			syscall.Kill(-pid, syscall.SIGCONT)
			continue
		}
		res.Code = ws.ExitStatus()
		break
	}
	res.Pid, res.Pgrp = os.Getpid(), syscall.Getpgrp()
	res.ForegroundAfter, _ = unix.IoctlGetInt(0, unix.TIOCGPGRP)
	b, _ = json.Marshal(res)
	if err := os.WriteFile(cfg.Result, b, 0o600); err != nil {
		return 3
	}
	return 0
}

// TestSetForegroundByFork checks the portable way of taking the terminal
// back (used outside Linux) here, where there is a pty to try it on.
func TestSetForegroundByFork(t *testing.T) {
	t.Parallel()
	_, slave := openPTY(t)
	_, dir := startOnTerminal(t, slave, helperConfig{Mode: "foreground-by-fork"})
	res := readResult(t, filepath.Join(dir, "result.json"))
	if res.Err != "" {
		t.Fatalf("helper: %s", res.Err)
	}
	if res.ForegroundAfter != res.Pgrp {
		t.Errorf("foreground group = %d, want the helper's %d", res.ForegroundAfter, res.Pgrp)
	}
}

// foregroundByForkHelper, a session leader on a terminal, puts a child
// in the foreground and takes the terminal back with setForegroundByFork.
func foregroundByForkHelper(cfg helperConfig) int {
	var res helperResult
	res.Pid, res.Pgrp = os.Getpid(), syscall.Getpgrp()
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "sleep 30"}, &syscall.ProcAttr{
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{Foreground: true, Ctty: 0},
	})
	if err != nil {
		res.Err = err.Error()
	} else {
		if fg, _ := unix.IoctlGetInt(0, unix.TIOCGPGRP); fg != pid {
			res.Err = fmt.Sprintf("child %d is not in the foreground (%d)", pid, fg)
		} else if err := setForegroundByFork(0, res.Pgrp); err != nil {
			res.Err = err.Error()
		}
		res.ForegroundAfter, _ = unix.IoctlGetInt(0, unix.TIOCGPGRP)
		syscall.Kill(pid, syscall.SIGKILL)
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
	}
	b, _ := json.Marshal(res)
	if err := os.WriteFile(cfg.Result, b, 0o600); err != nil {
		return 3
	}
	return 0
}
