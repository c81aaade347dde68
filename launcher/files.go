package launcher

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// File is a secret value destined for a file (--file ENV=REF): the child
// gets the file's path in ENV instead of the value itself.
type File struct {
	// Env is the variable that receives the path. It also names the file.
	Env string
	// Value is written byte for byte.
	Value []byte
}

// filesDirPrefix starts the name of every directory WriteFiles creates;
// RemoveFiles refuses other directories.
const filesDirPrefix = "runsecrets-"

// WriteFiles writes each of files to a 0600 file in a new private (0700)
// directory and returns the directory and the ENV=path variables for the
// child. The directory is created in the first of base that is an existing
// directory we can create in; the caller passes /dev/shm first so the
// values stay in memory where there is a tmpfs. Modes are set explicitly,
// whatever the umask. On any error nothing is left behind.
//
// File names are the ENV names, which the caller has validated; a name
// that is not a plain file name, or two names that collide on a
// case-insensitive file system, is an error.
func WriteFiles(base []string, files []File) (dir string, vars []Var, err error) {
	for _, f := range files {
		if !validFileName(f.Env) {
			return "", nil, fmt.Errorf("cannot use %q as a secret file name: want a variable name", f.Env)
		}
	}
	made, err := makePrivateDir(base)
	if err != nil {
		return "", nil, err
	}
	for _, f := range files {
		path := filepath.Join(made, f.Env)
		if err := writeSecretFile(path, f.Value); err != nil {
			os.RemoveAll(made)
			return "", nil, fmt.Errorf("write the file for %s: %w", f.Env, err)
		}
		vars = append(vars, Var{Name: f.Env, Value: path})
	}
	return made, vars, nil
}

// RemoveFiles removes a directory made by WriteFiles and everything in it.
// An empty dir is a no-op. As a guard against a caller passing the wrong
// path to a recursive removal, it refuses a directory whose name does not
// start with "runsecrets-".
func RemoveFiles(dir string) error {
	if dir == "" {
		return nil
	}
	if !strings.HasPrefix(filepath.Base(dir), filesDirPrefix) {
		return fmt.Errorf("refusing to remove %q: not a runsecrets files directory", dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove secret files: %w", err)
	}
	return nil
}

// makePrivateDir creates a fresh 0700 directory in the first usable base.
func makePrivateDir(base []string) (string, error) {
	var errs []error
	for _, b := range base {
		if b == "" {
			continue
		}
		if fi, err := os.Stat(b); err != nil || !fi.IsDir() {
			continue
		}
		// Trying is the only reliable writability test: permission bits
		// do not show read-only mounts, ACLs or root's privileges.
		dir, err := os.MkdirTemp(b, filesDirPrefix)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			os.Remove(dir)
			errs = append(errs, err)
			continue
		}
		return dir, nil
	}
	if len(errs) == 0 {
		return "", fmt.Errorf("no directory for secret files: none of %q exists", base)
	}
	return "", fmt.Errorf("no directory for secret files in %q: %w", base, errors.Join(errs...))
}

// writeSecretFile creates path exclusively with mode 0600 and writes value.
func writeSecretFile(path string, value []byte) (err error) {
	// O_EXCL: never write into a file that already exists (a collision, or
	// something planted in the directory).
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("another secret file has the same name")
		}
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	// The umask may have removed bits, never added them, but set the mode
	// exactly anyway so it does not depend on the umask at all.
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	_, err = f.Write(value)
	return err
}

// validFileName accepts the ENV names SPEC §3 allows, which are also safe
// file names on every system.
func validFileName(name string) bool {
	if name == "" {
		return false
	}
	for i, c := range name {
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
