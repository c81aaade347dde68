package resolve

import (
	"errors"
	"strings"
	"testing"
)

// The fuzz targets of the reference grammar and the mapping sources. CI runs
// their seeds (testdata/fuzz/<Target>/ and the f.Add calls) with every
// `go test`; a real run is, for example:
//
//	go test -run '^$' -fuzz FuzzParseRef -fuzztime 5m ./resolve/

// validName is the secret name rule of SPEC §2, written independently of
// checkName so the fuzzer tests one against the other.
func validName(s string) bool {
	if len(s) < 1 || len(s) > 127 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// validVersion is "latest" (empty) or 32 lower-case hex digits.
func validVersion(s string) bool {
	if s == "" {
		return true
	}
	if len(s) != 32 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// checkRef asserts what every accepted reference satisfies.
func checkRef(t *testing.T, in string, r Ref) {
	t.Helper()
	if !validName(r.Name) {
		t.Fatalf("ParseRef(%q) accepted name %q", in, r.Name)
	}
	if !validVersion(r.Version) {
		t.Fatalf("ParseRef(%q) accepted version %q", in, r.Version)
	}
	if r.Vault != "" && r.Vault != strings.ToLower(r.Vault) {
		t.Fatalf("ParseRef(%q) kept the vault's case: %q", in, r.Vault)
	}
	again, err := ParseRef(r.String())
	if err != nil {
		t.Fatalf("ParseRef(%q) = %+v, whose String() %q does not parse: %v", in, r, r.String(), err)
	}
	if again != r {
		t.Fatalf("ParseRef(%q) = %+v, but ParseRef(String() = %q) = %+v", in, r, r.String(), again)
	}
}

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{
		"db-pass", "db-pass/" + ver, "DB_PASS",
		"https://myvault.vault.azure.net/secrets/db-pass/" + ver,
		"@Microsoft.KeyVault(VaultName=myvault;SecretName=db-pass)",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := ParseRef(in)
		if err != nil {
			var re *RefError
			if !errors.As(err, &re) {
				t.Fatalf("ParseRef(%q) error %T is not a *RefError: %v", in, err, err)
			}
			if re.Reason == "" || re.Kind() != KindUsage {
				t.Fatalf("ParseRef(%q): error without a reason or of kind %v: %v", in, re.Kind(), err)
			}
			return
		}
		checkRef(t, in, r)
	})
}

// canary is planted in every map file FuzzCollect parses, on a comment line
// of its own: no error may quote it, since env and map files may hold values.
const canary = "CANARY-fuzz-5d1e"

func FuzzCollect(f *testing.F) {
	f.Add("DB_PASS=db-pass\x00API_KEY", "A=a,B\nC=c", "X=x\nexport Y=y/"+ver+"\n")
	f.Add("A=a\x00A=b", "A=a", "A=@Microsoft.KeyVault(VaultName=kv1;SecretName=a)")
	f.Fuzz(func(t *testing.T, maps, runsecretsMap, mapFile string) {
		src := Sources{RunsecretsMap: runsecretsMap}
		if maps != "" {
			// argv entries cannot hold NUL, so NUL separates them here.
			src.Maps = strings.Split(maps, "\x00")
		}
		text := "# " + canary + "\n" + mapFile
		mf, err := ParseDotenv("maps.env", []byte(text))
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) || fe.Kind() != KindUsage {
				t.Fatalf("ParseDotenv error %T (%v) is not a usage *FileError", err, err)
			}
			if strings.Contains(err.Error(), canary) || strings.Contains(fe.Hint, canary) {
				t.Fatalf("ParseDotenv error quotes the file: %v", err)
			}
		} else {
			src.MapFiles = []EnvFile{mf}
		}

		got, err := Collect(src)
		if err != nil {
			if got != nil {
				t.Fatalf("Collect returned mappings and an error: %v", err)
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("Collect error %T is not a non-empty resolve.Errors: %v", err, err)
			}
			for _, e := range errs {
				k, ok := e.(interface{ Kind() Kind })
				if !ok || k.Kind() == 0 {
					t.Fatalf("Collect error %T has no kind: %v", e, e)
				}
				if e.Error() == "" {
					t.Fatalf("Collect error %T has no text", e)
				}
				var me *MappingError
				if errors.As(e, &me) && (strings.Contains(me.Error(), canary) || strings.Contains(me.Hint, canary)) {
					t.Fatalf("Collect error quotes the map file: %v", e)
				}
			}
			if errs.Kind() != KindUsage {
				t.Fatalf("Collect errors of kind %v, want usage: %v", errs.Kind(), err)
			}
			return
		}
		seen := map[string]bool{}
		for _, m := range got {
			if !ValidEnvName(m.Env) {
				t.Fatalf("Collect accepted variable %q", m.Env)
			}
			if seen[m.Env] {
				t.Fatalf("Collect returned %s twice", m.Env)
			}
			seen[m.Env] = true
			r, err := ParseRef(m.Written)
			if err != nil {
				t.Fatalf("%s: Written %q does not parse: %v", m.Env, m.Written, err)
			}
			if r != m.Ref {
				t.Fatalf("%s: Written %q parses to %+v, not %+v", m.Env, m.Written, r, m.Ref)
			}
			checkRef(t, m.Written, m.Ref)
			if strings.Contains(m.Written, canary) {
				t.Fatalf("%s: a comment line became a reference: %q", m.Env, m.Written)
			}
		}
	})
}
