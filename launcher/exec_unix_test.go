//go:build unix

package launcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// execHelper runs in a helper process: it prints its PID, then Execs the
// script, so the test can check that the PID survives the exec.
func execHelper(cfg helperConfig) int {
	fmt.Printf("%d\n", os.Getpid())
	_, err := Exec([]string{"/bin/sh", "-c", cfg.Script}, cfg.Env)
	fmt.Fprintln(os.Stderr, "helper: exec returned:", err)
	return 3
}

// helperCommand prepares the test binary as a helper process with cfg.
func helperCommand(t testing.TB, cfg helperConfig) *exec.Cmd {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	// A race-enabled helper would sleep a second before exiting; a GORACE
	// of the caller's own still wins.
	cmd.Env = append([]string{"GORACE=atexit_sleep_ms=0"}, os.Environ()...)
	cmd.Env = append(cmd.Env, helperEnv+"="+string(b))
	return cmd
}

func TestExecReplacesProcess(t *testing.T) {
	t.Parallel()
	cmd := helperCommand(t, helperConfig{
		Mode:   "exec",
		Script: `echo "$X"; echo "${HOME-unset}"; echo $$; exit 7`,
		Env:    []string{"X=hello world", "PATH=/usr/bin:/bin"},
	})
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 7 {
		t.Fatalf("helper: %v, want exit status 7; stderr:\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("stdout = %q, want 4 lines", stdout.String())
	}
	helperPid, shellPid := lines[0], lines[3]
	if _, err := strconv.Atoi(helperPid); err != nil {
		t.Fatalf("helper pid %q: %v", helperPid, err)
	}
	if helperPid != shellPid {
		t.Errorf("shell pid %s != helper pid %s: the process was not replaced", shellPid, helperPid)
	}
	if diff := cmp.Diff([]string{"hello world", "unset"}, lines[1:3]); diff != "" {
		t.Errorf("child saw (-want +got):\n%s", diff)
	}
}

func TestExecStartErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "plain"), "#!/bin/sh\necho hi\n", 0o644)
	writeFile(t, filepath.Join(dir, "garbage"), "\x00\x01\x02\x03 not a program", 0o755)
	writeFile(t, filepath.Join(dir, "badinterp"), "#!/nonexistent/interpreter\n", 0o755)
	writeFile(t, filepath.Join(dir, "tool"), "#!/bin/sh\nexit 0\n", 0o755)
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	relDir, err := filepath.Rel(wd, dir)
	if err != nil {
		t.Fatal(err)
	}
	emptyDir := t.TempDir()

	tests := []struct {
		name     string
		command  string
		path     string // the child's PATH
		wantKind StartErrorKind
		wantErr  error // checked with errors.Is
		wantMsg  string
		wantHint string // substring
	}{
		{
			name:     "not found in path",
			command:  "no-such-command-xyz",
			path:     emptyDir + ":/nonexistent",
			wantKind: CommandNotFound,
			wantErr:  exec.ErrNotFound,
			wantMsg:  `command "no-such-command-xyz" not found in PATH`,
			wantHint: "PATH",
		},
		{
			name:     "no path at all",
			command:  "sh",
			wantKind: CommandNotFound,
			wantErr:  exec.ErrNotFound,
		},
		{
			name:     "not found by path",
			command:  filepath.Join(dir, "missing"),
			wantKind: CommandNotFound,
			wantErr:  fs.ErrNotExist,
			wantMsg:  fmt.Sprintf("command %q not found", filepath.Join(dir, "missing")),
		},
		{
			name:     "file below a regular file",
			command:  filepath.Join(dir, "plain", "x"),
			wantKind: CommandNotFound,
		},
		{
			name:     "mode 0644 by path",
			command:  filepath.Join(dir, "plain"),
			wantKind: CommandNotExecutable,
			wantErr:  fs.ErrPermission,
			wantMsg:  fmt.Sprintf("command %q cannot be executed: permission denied", filepath.Join(dir, "plain")),
			wantHint: "chmod +x",
		},
		{
			name:     "mode 0644 found in path",
			command:  "plain",
			path:     emptyDir + ":" + dir,
			wantKind: CommandNotExecutable,
			wantErr:  fs.ErrPermission,
			wantHint: "chmod +x " + filepath.Join(dir, "plain"),
		},
		{
			name:     "directory",
			command:  filepath.Join(dir, "subdir"),
			wantKind: CommandNotExecutable,
			wantErr:  syscall.EISDIR,
			wantHint: "is a directory",
		},
		{
			name:     "directory in path is skipped",
			command:  "subdir",
			path:     dir,
			wantKind: CommandNotFound,
		},
		{
			name:     "unknown binary format",
			command:  filepath.Join(dir, "garbage"),
			wantKind: CommandNotExecutable,
			wantErr:  syscall.ENOEXEC,
			wantHint: "#! line",
		},
		{
			name:     "missing interpreter",
			command:  filepath.Join(dir, "badinterp"),
			wantKind: CommandNotExecutable,
			wantErr:  syscall.ENOENT,
			wantHint: "interpreter",
		},
		{
			name:     "dot in path",
			command:  "tool",
			path:     "/nonexistent:" + relDir,
			wantKind: CommandRelativePath,
			wantErr:  exec.ErrDot,
			wantMsg:  fmt.Sprintf("command \"tool\" found as %q through a relative PATH entry; refusing to run it", filepath.Join(relDir, "tool")),
			wantHint: filepath.Join(relDir, "tool"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var env []string
			if tt.path != "" {
				env = []string{"PATH=" + tt.path}
			}
			code, err := Exec([]string{tt.command, "arg"}, env)
			var se *StartError
			if !errors.As(err, &se) {
				t.Fatalf("Exec = %d, %v; want a *StartError", code, err)
			}
			if code != -1 {
				t.Errorf("code = %d, want -1", code)
			}
			if se.Kind != tt.wantKind {
				t.Errorf("Kind = %v, want %v (err: %v)", se.Kind, tt.wantKind, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantErr)
			}
			if tt.wantMsg != "" && err.Error() != tt.wantMsg {
				t.Errorf("Error() = %q, want %q", err.Error(), tt.wantMsg)
			}
			if !strings.Contains(se.Hint(), tt.wantHint) {
				t.Errorf("Hint() = %q, want it to contain %q", se.Hint(), tt.wantHint)
			}
			if strings.Contains(err.Error(), "arg") {
				t.Errorf("Error() = %q mentions an argument", err.Error())
			}
		})
	}
}

func TestExecEmptyArgv(t *testing.T) {
	t.Parallel()
	if _, err := Exec(nil, nil); err == nil {
		t.Fatal("Exec(nil) succeeded")
	}
}

func TestLookPathDotHint(t *testing.T) {
	t.Parallel()
	e := &StartError{Command: "tool", Path: "tool", Kind: CommandRelativePath, Err: exec.ErrDot}
	if got, want := e.Hint(), `write "./tool" to run the file from there`; !strings.HasPrefix(got, want) {
		t.Errorf("Hint() = %q, want prefix %q", got, want)
	}
}
