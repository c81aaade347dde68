//go:build !unix

package launcher

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
)

// Exec runs argv with exactly the environment env (built by BuildEnv) and
// returns its exit code. Systems without execve cannot replace the
// process, so the child is spawned with this process's standard input,
// output and error and waited for.
//
// The command is looked up with exec.LookPath, in this process's PATH.
// While the child runs, Ctrl-C (os.Interrupt) is caught and dropped: the
// console delivers it to the child too, and this process must live on to
// report the child's exit code. The caller should stop its own signal
// handling first, as on Unix.
//
// A command that cannot be started yields code -1 and a *StartError.
func Exec(argv, env []string) (code int, err error) {
	if len(argv) == 0 || argv[0] == "" {
		return -1, errNoCommand
	}
	path, err := findCommand(argv[0])
	if err != nil {
		return -1, err
	}
	cmd := &exec.Cmd{
		Path:   path,
		Args:   argv,
		Env:    env,
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
	}
	interrupts := make(chan os.Signal, 1)
	signal.Notify(interrupts, os.Interrupt)
	defer signal.Stop(interrupts)
	if err := cmd.Start(); err != nil {
		return -1, startFailure(argv[0], path, err)
	}
	return waitExitCode(cmd)
}

// waitExitCode waits for cmd and returns its exit code; a failed wait is an
// error, a non-zero exit status is not.
func waitExitCode(cmd *exec.Cmd) (int, error) {
	err := cmd.Wait()
	var exitErr *exec.ExitError
	// ErrWaitDelay means the child exited but something it started kept
	// its output open; the exit code is still the child's.
	if err != nil && !errors.As(err, &exitErr) && !errors.Is(err, exec.ErrWaitDelay) {
		return -1, err
	}
	return cmd.ProcessState.ExitCode(), nil
}

// findCommand resolves argv[0] with exec.LookPath.
func findCommand(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err == nil {
		return path, nil
	}
	e := &StartError{Command: name, Path: path, Err: err}
	switch {
	case errors.Is(err, exec.ErrDot):
		e.Kind = CommandRelativePath
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		e.Kind = CommandNotFound
	case errors.Is(err, fs.ErrPermission):
		e.Kind = CommandNotExecutable
	default:
		e.Kind = CommandStartFailed
	}
	return "", e
}

// startFailure classifies an error from starting the found command.
func startFailure(name, path string, err error) error {
	e := &StartError{Command: name, Path: path, Err: err}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		e.Kind = CommandNotFound
	case errors.Is(err, fs.ErrPermission), isBadExecutable(err):
		e.Kind = CommandNotExecutable
	default:
		e.Kind = CommandStartFailed
	}
	return e
}
