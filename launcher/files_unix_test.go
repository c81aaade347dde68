//go:build unix

package launcher

import (
	"io/fs"
	"syscall"
	"testing"
)

// TestWriteFilesUmask checks the modes come out exact under umasks that
// would change them: 0777 leaves MkdirTemp and OpenFile nothing, 0 would
// not restrict anything. Not parallel: the umask is process-wide.
func TestWriteFilesUmask(t *testing.T) {
	for _, mask := range []int{0o777, 0o022, 0} {
		dir, vars, err := func() (string, []Var, error) {
			old := syscall.Umask(mask)
			defer syscall.Umask(old)
			return WriteFiles([]string{t.TempDir()}, []File{{Env: "K", Value: []byte("v")}})
		}()
		if err != nil {
			t.Fatalf("umask %#o: WriteFiles: %v", mask, err)
		}
		checkMode(t, dir, fs.ModeDir|0o700)
		checkMode(t, vars[0].Value, 0o600)
		if err := RemoveFiles(dir); err != nil {
			t.Fatal(err)
		}
	}
}
