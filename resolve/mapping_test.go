package resolve

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// brief is a mapping reduced to what a table can state in one line.
type brief struct {
	Env, Ref, From string
	AsFile         bool
}

func briefs(ms []Mapping) []brief {
	var out []brief
	for _, m := range ms {
		out = append(out, brief{m.Env, m.Ref.String(), m.From.String(), m.AsFile})
	}
	return out
}

func mustDotenv(t testing.TB, path, text string) EnvFile {
	t.Helper()
	f, err := ParseDotenv(path, []byte(text))
	if err != nil {
		t.Fatalf("ParseDotenv(%s): %v", path, err)
	}
	return f
}

func TestCollect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  func(t testing.TB) Sources
		want []brief
	}{
		{"map pair", func(testing.TB) Sources { return Sources{Maps: []string{"DB_PASS=db-pass"}} },
			[]brief{{"DB_PASS", "db-pass", "--map #1", false}}},
		{"map shorthand", func(testing.TB) Sources { return Sources{Maps: []string{"DB_PASS", "Api_Key"}} },
			[]brief{{"DB_PASS", "db-pass", "--map #1", false}, {"Api_Key", "api-key", "--map #2", false}}},
		{"map keeps = in ref", func(testing.TB) Sources {
			return Sources{Maps: []string{"X=@Microsoft.KeyVault(VaultName=kv1;SecretName=x)"}}
		}, []brief{{"X", "@Microsoft.KeyVault(VaultName=kv1;SecretName=x)", "--map #1", false}}},
		{"file flag", func(testing.TB) Sources { return Sources{Files: []string{"KEY_FILE=tls-key"}} },
			[]brief{{"KEY_FILE", "tls-key", "--file #1", true}}},
		{"map file with lines", func(t testing.TB) Sources {
			return Sources{MapFiles: []EnvFile{mustDotenv(t, "m.env", "# comment\nA=a-secret\n\nexport B=b/"+ver+"\n")}}
		}, []brief{{"A", "a-secret", "--map-file m.env:2", false}, {"B", "b/" + ver, "--map-file m.env:4", false}}},
		{"RUNSECRETS_MAP commas and newlines", func(testing.TB) Sources {
			return Sources{RunsecretsMap: " A=a , B\n\nC=https://kv1.vault.azure.net/secrets/c,"}
		}, []brief{{"A", "a", "RUNSECRETS_MAP #1", false}, {"B", "b", "RUNSECRETS_MAP #2", false},
			{"C", "https://kv1.vault.azure.net/secrets/c", "RUNSECRETS_MAP #3", false}}},
		{"environment references", func(testing.TB) Sources {
			return Sources{Environ: []string{"PATH=/bin", "Z=keyvault:z-secret", "A=@Microsoft.KeyVault(VaultName=kv1;SecretName=a)", "PLAIN=keyvault", "RUNSECRETS_X=keyvault:ignored"}}
		}, []brief{{"A", "@Microsoft.KeyVault(VaultName=kv1;SecretName=a)", "environment variable A", false}, {"Z", "z-secret", "environment variable Z", false}}},
		{"env file references win over environment", func(t testing.TB) Sources {
			return Sources{Environ: []string{"A=keyvault:from-env", "B=keyvault:b"},
				EnvFiles: []EnvFile{mustDotenv(t, "e.env", "A=keyvault:from-file\nB=plain\n")}}
		}, []brief{{"A", "from-file", "--env-file e.env:1", false}}},
		{"no env refs", func(testing.TB) Sources {
			return Sources{Environ: []string{"A=keyvault:a"}, NoEnvRefs: true}
		}, nil},
		{"same ref twice is fine", func(t testing.TB) Sources {
			return Sources{Maps: []string{"DB_PASS=db-pass", "DB_PASS"}, Environ: []string{"DB_PASS=keyvault:DB-PASS"}}
		}, []brief{{"DB_PASS", "db-pass", "--map #1", false}}},
		{"order of sources", func(t testing.TB) Sources {
			return Sources{Maps: []string{"M=m"}, Files: []string{"F=f"},
				MapFiles: []EnvFile{mustDotenv(t, "m.env", "MF=mf\n")}, RunsecretsMap: "R=r", Environ: []string{"E=keyvault:e"}}
		}, []brief{{"M", "m", "--map #1", false}, {"F", "f", "--file #1", true}, {"MF", "mf", "--map-file m.env:1", false},
			{"R", "r", "RUNSECRETS_MAP #1", false}, {"E", "e", "environment variable E", false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Collect(tt.src(t))
			if err != nil {
				t.Fatalf("Collect: %v", err)
			}
			if diff := cmp.Diff(tt.want, briefs(got)); diff != "" {
				t.Errorf("Collect (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCollectErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  Sources
		want []string // one substring per expected error, in order
	}{
		{"bad env name", Sources{Maps: []string{"1X=a", "A-B=b"}},
			[]string{`1X: invalid variable name "1X" (--map #1)`, `A-B: invalid variable name "A-B" (--map #2)`}},
		{"underscore secret with hint", Sources{Maps: []string{"DB=DB_PASS"}},
			[]string{`DB: invalid reference "DB_PASS": secret names cannot contain '_'`}},
		{"conflict names both places", Sources{Maps: []string{"DB_PASS=a"}, RunsecretsMap: "DB_PASS=b"},
			[]string{"DB_PASS: mapped to two different secrets, a and b (--map #1 and RUNSECRETS_MAP #1)"}},
		{"conflict on version", Sources{Maps: []string{"A=a", "A=a/" + ver}},
			[]string{"A: mapped to two different secrets"}},
		{"conflict with environment", Sources{Maps: []string{"A=a"}, Environ: []string{"A=keyvault:other"}},
			[]string{"(--map #1 and environment variable A)"}},
		{"file and value", Sources{Maps: []string{"K=k"}, Files: []string{"K=k"}},
			[]string{"K: mapped both as a value and as a --file path (--map #1 and --file #1)"}},
		{"file needs a ref", Sources{Files: []string{"K"}}, []string{"--file needs ENV=REF"}},
		{"all errors at once", Sources{Maps: []string{"1=a", "B=b_c"}, RunsecretsMap: "C=http://x"},
			[]string{"1:", "B:", "C:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Collect(tt.src)
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Collect = %v, want Errors", err)
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i], w)
				}
			}
			if errs.Kind() != KindUsage {
				t.Errorf("Kind = %v, want usage", errs.Kind())
			}
		})
	}
}

func TestCollectUnderscoreHint(t *testing.T) {
	t.Parallel()
	_, err := Collect(Sources{Maps: []string{"DB=DB_PASS"}})
	var me *MappingError
	if !errors.As(err, &me) {
		t.Fatalf("want a MappingError, got %v", err)
	}
	if !strings.Contains(me.Hint, "write db-pass") {
		t.Errorf("hint %q does not spell db-pass", me.Hint)
	}
}

func TestParseDotenv(t *testing.T) {
	t.Parallel()
	text := "# header\nA=1\nexport B = \"two words\"\nC='single'\nMULTI=\"line1\nline2\"\nD: yaml\nA=again\n"
	got := mustDotenv(t, "f.env", text)
	want := []Entry{
		{"B", "two words", 3}, {"C", "single", 4}, {"MULTI", "line1\nline2", 5}, {"D", "yaml", 7}, {"A", "again", 8},
	}
	if diff := cmp.Diff(want, got.Entries); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}

func TestParseDotenvErrorHidesContent(t *testing.T) {
	t.Parallel()
	const canary = "canary-s3cr3t-value"
	_, err := ParseDotenv("f.env", []byte("A=ok\nB=\"unterminated "+canary+"\n"))
	var fe *FileError
	if !errors.As(err, &fe) {
		t.Fatalf("want a FileError, got %v", err)
	}
	if fe.Line != 2 {
		t.Errorf("line = %d, want 2", fe.Line)
	}
	if strings.Contains(err.Error(), canary) {
		t.Errorf("error quotes the file: %v", err)
	}
}
