package launcher

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteFiles(t *testing.T) {
	t.Parallel()
	pem := []byte("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n")
	withNUL := []byte("a\x00b\x00\xff")
	base := t.TempDir()
	dir, vars, err := WriteFiles([]string{filepath.Join(base, "missing"), base}, []File{
		{Env: "TLS_KEY", Value: pem},
		{Env: "BLOB", Value: withNUL},
		{Env: "EMPTY", Value: nil},
	})
	if err != nil {
		t.Fatalf("WriteFiles: %v", err)
	}
	if filepath.Dir(dir) != base || !strings.HasPrefix(filepath.Base(dir), "runsecrets-") {
		t.Errorf("dir = %q, want runsecrets-* in %q", dir, base)
	}
	want := []Var{
		{"TLS_KEY", filepath.Join(dir, "TLS_KEY")},
		{"BLOB", filepath.Join(dir, "BLOB")},
		{"EMPTY", filepath.Join(dir, "EMPTY")},
	}
	if diff := cmp.Diff(want, vars); diff != "" {
		t.Errorf("vars mismatch (-want +got):\n%s", diff)
	}
	for i, value := range [][]byte{pem, withNUL, {}} {
		got, err := os.ReadFile(vars[i].Value)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(value, got); diff != "" {
			t.Errorf("%s content mismatch (-want +got):\n%s", vars[i].Name, diff)
		}
	}
	if runtime.GOOS != "windows" {
		checkMode(t, dir, fs.ModeDir|0o700)
		for _, v := range vars {
			checkMode(t, v.Value, 0o600)
		}
	}

	if err := RemoveFiles(dir); err != nil {
		t.Fatalf("RemoveFiles: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after RemoveFiles, stat %s: %v; want not exist", dir, err)
	}
}

func checkMode(t testing.TB, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode(); got != want {
		t.Errorf("mode of %s = %v, want %v", path, got, want)
	}
}

func TestWriteFilesSkipsUnusableBase(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	notDir := filepath.Join(parent, "file")
	writeFile(t, notDir, "x", 0o600)
	good := filepath.Join(parent, "good")
	if err := os.Mkdir(good, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, _, err := WriteFiles([]string{"", filepath.Join(parent, "missing"), notDir, good}, []File{{Env: "A", Value: []byte("v")}})
	if err != nil {
		t.Fatalf("WriteFiles: %v", err)
	}
	defer RemoveFiles(dir)
	if filepath.Dir(dir) != good {
		t.Errorf("dir = %q, want it in %q", dir, good)
	}
}

func TestWriteFilesErrorsLeaveNothing(t *testing.T) {
	t.Parallel()
	const canary = "canary-s3cr3t"
	tests := []struct {
		name  string
		base  func(t *testing.T) string
		files []File
	}{
		{
			name:  "bad name",
			base:  func(t *testing.T) string { return t.TempDir() },
			files: []File{{Env: "OK", Value: []byte(canary)}, {Env: "../escape", Value: []byte(canary)}},
		},
		{
			name:  "leading digit",
			base:  func(t *testing.T) string { return t.TempDir() },
			files: []File{{Env: "1A", Value: []byte(canary)}},
		},
		{
			name:  "same name twice",
			base:  func(t *testing.T) string { return t.TempDir() },
			files: []File{{Env: "DUP", Value: []byte(canary)}, {Env: "DUP", Value: []byte(canary)}},
		},
		{
			name:  "no usable base",
			base:  func(t *testing.T) string { return filepath.Join(t.TempDir(), "missing") },
			files: []File{{Env: "A", Value: []byte(canary)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := tt.base(t)
			dir, vars, err := WriteFiles([]string{base}, tt.files)
			if err == nil {
				t.Fatalf("WriteFiles = %q, %v; want an error", dir, vars)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("error %q contains the value", err)
			}
			if dir != "" || vars != nil {
				t.Errorf("WriteFiles returned %q, %v with its error", dir, vars)
			}
			entries, _ := os.ReadDir(base)
			if len(entries) != 0 {
				t.Errorf("left behind in %s: %v", base, entries)
			}
		})
	}
}

func TestRemoveFiles(t *testing.T) {
	t.Parallel()
	if err := RemoveFiles(""); err != nil {
		t.Errorf("RemoveFiles(\"\") = %v", err)
	}
	other := t.TempDir()
	if err := RemoveFiles(other); err == nil {
		t.Errorf("RemoveFiles(%q) succeeded on a directory it did not make", other)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("RemoveFiles removed %q: %v", other, err)
	}
	if err := RemoveFiles(filepath.Join(other, "runsecrets-gone")); err != nil {
		t.Errorf("RemoveFiles of a missing directory = %v, want nil", err)
	}
}
