//go:build unix

package main

import (
	"syscall"

	"github.com/rogpeppe/go-internal/testscript"
)

var signalNames = map[string]syscall.Signal{
	"TERM": syscall.SIGTERM, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP, "QUIT": syscall.SIGQUIT,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "WINCH": syscall.SIGWINCH, "KILL": syscall.SIGKILL,
}

func cmdSignal(ts *testscript.TestScript, neg bool, args []string) {
	child := len(args) == 2 && args[0] == "-child"
	if child {
		args = args[1:]
	}
	if neg || len(args) != 1 {
		ts.Fatalf("usage: signal [-child] SIGNAL")
	}
	sig, ok := signalNames[args[0]]
	if !ok {
		ts.Fatalf("unknown signal %q", args[0])
	}
	cmd := newestBackground(ts)
	signalled.Store(ts, cmd)
	pid := cmd.Process.Pid
	if child {
		// A process started by the background command, such as the
		// program unshare --fork runs as PID 1 of a new namespace.
		pid = firstChild(ts, pid)
	}
	ts.Check(syscall.Kill(pid, sig))
}
