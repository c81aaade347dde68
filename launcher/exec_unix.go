//go:build unix

package launcher

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Exec replaces the current process with argv, running with exactly the
// environment env (built by BuildEnv). The command is looked up in the PATH
// of env, not of this process, as env(1) and execvp do: the child's PATH is
// the one the user configured for it.
//
// On Unix Exec does not return on success: the process image is replaced,
// so the child keeps this PID, receives signals directly and its exit
// status becomes the process's. Before calling Exec the caller must stop
// its own signal handling (signal.Stop, or the stop function of
// signal.NotifyContext): a caught signal arriving before execve would
// otherwise be swallowed by the Go runtime instead of acting on the
// program, and an ignored one (signal.Ignore) would stay ignored in the
// child. Deferred functions do not run.
//
// Exec returns only on failure, with code -1 and a *StartError (or an error
// for an empty argv).
func Exec(argv, env []string) (code int, err error) {
	if len(argv) == 0 || argv[0] == "" {
		return -1, errNoCommand
	}
	path, err := findCommand(argv[0], env)
	if err != nil {
		return -1, err
	}
	err = unix.Exec(path, argv, env)
	return -1, execFailure(argv[0], path, err)
}

// findCommand resolves argv[0] in the child's PATH.
func findCommand(name string, env []string) (string, error) {
	pathEnv, _ := lookupEnv(env, "PATH", false)
	path, err := lookPath(name, pathEnv)
	if err == nil {
		return path, nil
	}
	e := &StartError{Command: name, Path: path, Err: err}
	switch {
	case errors.Is(err, exec.ErrDot):
		e.Kind = CommandRelativePath
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		e.Kind = CommandNotFound
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EISDIR):
		e.Kind = CommandNotExecutable
	default:
		e.Kind = CommandStartFailed
	}
	return "", e
}

// lookPath follows exec.LookPath, but searches the given PATH value
// instead of this process's, so the lookup matches the environment the
// child runs with. Like exec.LookPath it refuses (exec.ErrDot) a file found
// through a relative PATH entry. Unlike it, a file that exists in PATH but
// is not executable is reported as such (fs.ErrPermission) when nothing
// executable is found, as shells do, because "not found" would send the
// user looking in the wrong place.
func lookPath(file, pathEnv string) (string, error) {
	if strings.Contains(file, "/") {
		if err := checkExecutable(file); err != nil {
			return file, err
		}
		return file, nil
	}
	var denied string
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			// An empty PATH element means the working directory.
			dir = "."
		}
		path := filepath.Join(dir, file)
		err := checkExecutable(path)
		if err == nil {
			if !filepath.IsAbs(path) {
				return path, exec.ErrDot
			}
			return path, nil
		}
		if denied == "" && errors.Is(err, fs.ErrPermission) {
			denied = path
		}
	}
	if denied != "" {
		return denied, fs.ErrPermission
	}
	return "", exec.ErrNotFound
}

// checkExecutable reports whether path is a regular file with an execute
// bit. execve has the final word; this only classifies the common cases
// before trying it.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	switch m := fi.Mode(); {
	case m.IsDir():
		return syscall.EISDIR
	case m&0o111 == 0:
		return fs.ErrPermission
	}
	return nil
}

// execFailure classifies an execve error. The file was found and looked
// executable just before, so ENOENT here means its #! interpreter or
// dynamic loader is missing, which shells report as 126, not 127.
func execFailure(name, path string, err error) error {
	e := &StartError{Command: name, Path: path, Err: err}
	switch {
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM),
		errors.Is(err, syscall.ENOEXEC), errors.Is(err, syscall.EISDIR),
		errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ETXTBSY):
		e.Kind = CommandNotExecutable
	default:
		e.Kind = CommandStartFailed
	}
	return e
}
