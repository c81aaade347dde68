//go:build !unix

package launcher

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
)

// Supervise runs the child described by spec and returns its exit code.
// Without Unix process groups and signals there is nothing to forward or
// reap: the child is spawned and waited for, its output masked when
// spec.Mask is set. Ctrl-C (os.Interrupt) reaches the child from the
// console directly, so Supervise only keeps it from ending this process.
// When ctx is done the child is killed. A command that cannot be started
// is a *StartError; OnExit is called before Supervise returns, on every
// path.
func Supervise(ctx context.Context, spec RunSpec) (code int, err error) {
	if spec.OnExit != nil {
		defer spec.OnExit()
	}
	if len(spec.Argv) == 0 || spec.Argv[0] == "" {
		return -1, errNoCommand
	}
	if err := ctx.Err(); err != nil {
		return -1, fmt.Errorf("command not started: %w", err)
	}
	path, err := findCommand(spec.Argv[0])
	if err != nil {
		return -1, err
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Args = spec.Argv
	cmd.Env = spec.Env
	cmd.Stdin = spec.Stdin
	cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
	cmd.WaitDelay = outputDrainTimeout
	if len(spec.Mask) > 0 {
		var maskers []*Masker
		mask := func(w io.Writer) *Masker {
			m := NewMasker(w, spec.Mask)
			m.Delay = spec.MaskDelay
			maskers = append(maskers, m)
			return m
		}
		if spec.Stdout != nil {
			cmd.Stdout = mask(spec.Stdout)
		}
		if spec.Stderr != nil {
			if sameWriter(spec.Stderr, spec.Stdout) {
				cmd.Stderr = cmd.Stdout
			} else {
				cmd.Stderr = mask(spec.Stderr)
			}
		}
		defer func() {
			for _, m := range maskers {
				m.Close()
			}
		}()
	}

	interrupts := make(chan os.Signal, 1)
	signal.Notify(interrupts, os.Interrupt)
	defer signal.Stop(interrupts)
	if err := cmd.Start(); err != nil {
		return -1, startFailure(spec.Argv[0], path, err)
	}
	return waitExitCode(cmd)
}
