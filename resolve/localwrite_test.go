package resolve

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/joho/godotenv"
)

func TestUpdateSecretsFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    string
		updates []Update
		want    string
	}{
		{
			name:    "new file",
			file:    "",
			updates: []Update{{"db-pass", "s3cret"}},
			want:    "DB_PASS=\"s3cret\"\n",
		},
		{
			name:    "replace in place, keep comments, blank lines and order",
			file:    "# header\n\nA=1\nDB_PASS=old # the database\n  export B='two'\n",
			updates: []Update{{"db-pass", "new"}},
			want:    "# header\n\nA=1\nDB_PASS=\"new\" # the database\n  export B='two'\n",
		},
		{
			name:    "key spelling and yaml style kept",
			file:    "db_pass: old\nother=x\n",
			updates: []Update{{"db-pass", "new"}},
			want:    "db_pass: \"new\"\nother=x\n",
		},
		{
			name:    "multi-line quoted value replaced whole",
			file:    "A=1\nTLS_KEY=\"-----BEGIN-----\nabc\n-----END-----\n\"\nB=2\n",
			updates: []Update{{"tls-key", "one line"}},
			want:    "A=1\nTLS_KEY=\"one line\"\nB=2\n",
		},
		{
			name:    "one line replaced by several",
			file:    "TLS_KEY=x\nB=2\n",
			updates: []Update{{"tls-key", "l1\nl2\n"}},
			want:    "TLS_KEY=\"l1\\nl2\\n\"\nB=2\n",
		},
		{
			name:    "every key of the secret",
			file:    "DB_PASS=same\ndb_pass=same\n",
			updates: []Update{{"db-pass", "new"}},
			want:    "DB_PASS=\"new\"\ndb_pass=\"new\"\n",
		},
		{
			name:    "names are case-insensitive",
			file:    "db_pass=old\n",
			updates: []Update{{"DB-Pass", "new"}},
			want:    "db_pass=\"new\"\n",
		},
		{
			name:    "append after a last line without newline",
			file:    "A=1",
			updates: []Update{{"api-key", "k"}},
			want:    "A=1\nAPI_KEY=\"k\"\n",
		},
		{
			name:    "empty value at the end of the file",
			file:    "A=1\nDB_PASS=",
			updates: []Update{{"db-pass", "v"}},
			want:    "A=1\nDB_PASS=\"v\"",
		},
		{
			name:    "CRLF file keeps its line ends",
			file:    "A=1\r\nDB_PASS=old\r\nB=2\r\n",
			updates: []Update{{"db-pass", "new"}},
			want:    "A=1\r\nDB_PASS=\"new\"\r\nB=2\r\n",
		},
		{
			name:    "several updates, existing and new, in order",
			file:    "B=2\nA=1\n",
			updates: []Update{{"z", "26"}, {"a", "x"}, {"y", "25"}},
			want:    "B=2\nA=\"x\"\nZ=\"26\"\nY=\"25\"\n",
		},
		{
			name:    "value with dollar and quotes",
			file:    "A=1\n",
			updates: []Update{{"a", `$HOME "q" \ x`}},
			want:    "A=\"\\$HOME \\\"q\\\" \\\\ x\"\n",
		},
		{
			name:    "value ending with a backslash",
			file:    "A=1 # c\n",
			updates: []Update{{"a", `C:\dir\`}},
			want:    "A=C:\\dir\\ # c\n",
		},
		{
			name:    "unquoted value after a lone CR",
			file:    "A=x #c\rB=y\n",
			updates: []Update{{"b", "new"}},
			want:    "A=x #c\rB=\"new\"\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := UpdateSecretsFile("secrets.env", []byte(tt.file), tt.updates)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("updated file (-want +got):\n%s", diff)
			}
			lf, err := NewLocalFile("secrets.env", got, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range tt.updates {
				if v := lf.values[strings.ToLower(u.Name)]; v != u.Value {
					t.Errorf("secret %s reads back as %q, want %q", u.Name, v, u.Value)
				}
			}
		})
	}
}

func TestUpdateSecretsFileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    string
		updates []Update
		want    string
	}{
		{"unparsable file", "A=1\nB=\"CANARY-open\n", []Update{{"a", "x"}}, "secrets.env:2: not a dotenv line"},
		{"unwritable value", "A=1\n", []Update{{"a", "x\ny\\"}}, "secret a: a dotenv line cannot hold this value: it ends with a backslash and spans several lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := UpdateSecretsFile("secrets.env", []byte(tt.file), tt.updates)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "CANARY") {
				t.Errorf("the error quotes the file: %v", err)
			}
		})
	}
}

func TestSetLocal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	t.Run("new file is 0600", func(t *testing.T) {
		path := filepath.Join(dir, "new.env")
		if err := SetLocal(path, []Update{{"db-pass", "v1"}}); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
		}
		assertFile(t, path, "DB_PASS=\"v1\"\n")
	})

	t.Run("existing file keeps its mode", func(t *testing.T) {
		path := filepath.Join(dir, "kept.env")
		if err := os.WriteFile(path, []byte("# mine\nA=1\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, 0o640) // past the umask
		if err := SetLocal(path, []Update{{"a", "2"}}); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(path)
		if fi.Mode().Perm() != 0o640 {
			t.Errorf("mode = %v, want 0640", fi.Mode().Perm())
		}
		assertFile(t, path, "# mine\nA=\"2\"\n")
	})

	t.Run("symlink target is updated", func(t *testing.T) {
		target := filepath.Join(dir, "target.env")
		link := filepath.Join(dir, "link.env")
		os.WriteFile(target, []byte("A=1\n"), 0o600)
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if err := SetLocal(link, []Update{{"b", "2"}}); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("the link was replaced: %v %v", fi, err)
		}
		assertFile(t, target, "A=1\nB=\"2\"\n")
	})

	t.Run("refused update leaves the file alone", func(t *testing.T) {
		path := filepath.Join(dir, "bad.env")
		os.WriteFile(path, []byte("A=\"open\n"), 0o600)
		err := SetLocal(path, []Update{{"a", "2"}})
		var fe *FileError
		if !errors.As(err, &fe) || fe.Kind() != KindConfig {
			t.Fatalf("err = %v, want a configuration *FileError", err)
		}
		assertFile(t, path, "A=\"open\n")
	})

	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func assertFile(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

// FuzzUpdateSecretsFile checks the statement scanner against godotenv: for
// any file godotenv parses, an update either applies (the secret reads back,
// every other key keeps its value) or is refused, never corrupting.
func FuzzUpdateSecretsFile(f *testing.F) {
	for _, s := range []string{
		"", "A=1\n", "# c\nDB_PASS=x # y\nB='z'\n", "export DB_PASS=\"a\nb\"\n", "db_pass: 1\r\nX=2", "A=x #c\rDB_PASS=y\n",
		"DB_PASS=\"a\\\"\" B=2\n", "DB_PASS=# not a comment\n", "A=${DB_PASS}\nDB_PASS=1\n", "DB_PASS",
	} {
		f.Add(s, "new value")
	}
	f.Fuzz(func(t *testing.T, file, value string) {
		old, err := godotenv.Unmarshal(file)
		if err != nil {
			return
		}
		got, err := UpdateSecretsFile("f.env", []byte(file), []Update{{"db-pass", value}})
		if err != nil {
			var de *DotenvError
			var fe *FileError
			if !errors.As(err, &de) && !errors.As(err, &fe) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		now, err := godotenv.UnmarshalBytes(got)
		if err != nil {
			t.Fatalf("the updated file does not parse: %v\n%q", err, got)
		}
		for k, v := range now {
			if SecretNameFor(k) == "db-pass" {
				if v != value {
					t.Fatalf("%s = %q, want %q in\n%q", k, v, value, got)
				}
				continue
			}
			// Values that expand variables may change with the secret.
			if !strings.Contains(file, "$") && v != old[k] {
				t.Fatalf("%s changed from %q to %q in\n%q", k, old[k], v, got)
			}
		}
	})
}
