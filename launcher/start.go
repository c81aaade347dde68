package launcher

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// StartErrorKind classifies why a command could not be started, so the
// caller can pick the exit status a shell would use (SPEC §8) without this
// package knowing the table.
type StartErrorKind int

const (
	// CommandStartFailed is any other failure to start the command, such as
	// an argument list that is too long. Shells report these as 126.
	CommandStartFailed StartErrorKind = iota
	// CommandNotFound means no such file exists, or none was found in the
	// child's PATH. Shells report this as 127.
	CommandNotFound
	// CommandNotExecutable means the file exists but cannot be run: no
	// execute permission, a directory, an unknown binary format or a
	// missing #! interpreter. Shells report this as 126.
	CommandNotExecutable
	// CommandRelativePath means the command was found only through a
	// relative PATH entry such as "." (exec.ErrDot). Running it would let
	// the working directory choose the program, so it is refused; naming it
	// as ./name runs it deliberately.
	CommandRelativePath
)

// String names the kind, for logs and test failures.
func (k StartErrorKind) String() string {
	switch k {
	case CommandStartFailed:
		return "start failed"
	case CommandNotFound:
		return "not found"
	case CommandNotExecutable:
		return "not executable"
	case CommandRelativePath:
		return "relative path"
	}
	return fmt.Sprintf("StartErrorKind(%d)", int(k))
}

// StartError reports a command that could not be started. It names the
// command (argv[0], which never holds a secret) and never its arguments or
// environment.
type StartError struct {
	// Command is argv[0] as given.
	Command string
	// Path is the file that was found or tried, when there was one.
	Path string
	// Kind classifies the failure.
	Kind StartErrorKind
	// Err is the underlying cause: exec.ErrNotFound, exec.ErrDot, or the
	// error of the stat or exec call.
	Err error
}

// Error describes the failure in one lower-case line; Hint says what to do.
func (e *StartError) Error() string {
	switch e.Kind {
	case CommandNotFound:
		if hasPathSeparator(e.Command) {
			return fmt.Sprintf("command %q not found", e.Command)
		}
		return fmt.Sprintf("command %q not found in PATH", e.Command)
	case CommandNotExecutable:
		return fmt.Sprintf("command %q cannot be executed: %v", e.Command, causeText(e.Err))
	case CommandRelativePath:
		return fmt.Sprintf("command %q found as %q through a relative PATH entry; refusing to run it", e.Command, e.Path)
	}
	return fmt.Sprintf("start command %q: %v", e.Command, causeText(e.Err))
}

// Unwrap returns the underlying cause, so errors.Is(err, exec.ErrDot) and
// errors.Is(err, fs.ErrPermission) work.
func (e *StartError) Unwrap() error { return e.Err }

// Hint says what to do about the error, in one lower-case line, for the
// caller to print after it.
func (e *StartError) Hint() string {
	switch e.Kind {
	case CommandNotFound:
		if hasPathSeparator(e.Command) {
			return fmt.Sprintf("check the path %q; it is relative to the working directory unless it starts with /", e.Command)
		}
		return fmt.Sprintf("check the spelling of %q and that its directory is in the PATH given to the child", e.Command)
	case CommandRelativePath:
		return fmt.Sprintf("write %q to run the file from there, or remove relative entries such as \".\" from PATH", dotSlash(e.Path))
	case CommandNotExecutable:
		switch {
		case isDirError(e.Err):
			return fmt.Sprintf("%q is a directory; name the program inside it", e.Command)
		case isNoExecError(e.Err):
			return fmt.Sprintf("%q is not a program for this system and has no #! line; run it through its interpreter, e.g. sh %s", e.Command, e.Command)
		case errors.Is(e.Err, fs.ErrNotExist):
			return fmt.Sprintf("the interpreter on the #! line of %q, or its dynamic loader, is missing", e.pathOrCommand())
		case errors.Is(e.Err, fs.ErrPermission):
			return fmt.Sprintf("make it executable (chmod +x %s), or check that its file system is not mounted noexec", e.pathOrCommand())
		}
		return fmt.Sprintf("check that %q is a program for this system", e.pathOrCommand())
	}
	return "check the command and its arguments"
}

func (e *StartError) pathOrCommand() string {
	if e.Path != "" {
		return e.Path
	}
	return e.Command
}

// causeText strips the file name from a *fs.PathError, which Error already
// names, so messages do not repeat it.
func causeText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

func hasPathSeparator(name string) bool {
	return strings.ContainsRune(name, '/') || strings.ContainsRune(name, '\\') && isWindows
}

// dotSlash turns a relative path found through PATH into one that runs that
// file regardless of PATH.
func dotSlash(p string) string {
	if hasPathSeparator(p) {
		return p
	}
	if isWindows {
		return `.\` + p
	}
	return "./" + p
}

// errNoCommand is returned when argv is empty; the caller's usage checks
// should make it unreachable.
var errNoCommand = errors.New("no command given")
