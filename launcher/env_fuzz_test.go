package launcher

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzBuildEnv checks the child environment's invariants for any layers:
// every entry is NAME=VALUE with a name that appears once, sorted; a secret
// always wins over the inherited environment and the env files; a scrubbed
// name never appears; RUNSECRETS_* settings are not inherited; a NUL byte
// is an error that names the variable and never quotes the value.
func FuzzBuildEnv(f *testing.F) {
	f.Add("PATH=/bin\x00HOME=/root\x00RUNSECRETS_MAP=A", "A=file\x00B=b", "A=secret", "HOME")
	f.Add("A=1\x00A=2", "", "B=x\x00y", "")
	f.Add("=C:=C:\\\x00X==", "K=v=w", "K=s", "K")
	f.Fuzz(func(t *testing.T, inherited, files, secrets, scrub string) {
		spec := EnvSpec{
			Inherited: splitNUL(inherited),
			Files:     vars(files),
			Secrets:   vars(secrets),
			Scrub:     splitNUL(scrub),
		}
		env, err := buildEnv(spec, false)
		if err != nil {
			var nul *NULError
			var name *NameError
			switch {
			case errors.As(err, &nul):
				for _, v := range append(spec.Files, spec.Secrets...) {
					if v.Name == nul.Name && strings.ContainsRune(v.Value, 0) && len(v.Value) > 2 && strings.Contains(err.Error(), v.Value) {
						t.Fatalf("the error quotes the value: %v", err)
					}
				}
			case errors.As(err, &name):
			default:
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		seen := map[string]string{}
		var names []string
		for _, kv := range env.Vars {
			name, value, ok := strings.Cut(kv, "=")
			if !ok || name == "" {
				t.Fatalf("entry %q is not NAME=VALUE", kv)
			}
			if strings.ContainsRune(kv, 0) {
				t.Fatalf("entry %q holds a NUL", kv)
			}
			if _, dup := seen[name]; dup {
				t.Fatalf("%s appears twice", name)
			}
			seen[name] = value
			names = append(names, name)
		}
		if !slices.IsSorted(names) {
			t.Fatalf("not sorted: %q", names)
		}
		for _, s := range spec.Scrub {
			if _, ok := seen[s]; ok {
				t.Fatalf("scrubbed %s is still there", s)
			}
		}
		winner := map[string]string{}
		for _, v := range spec.Secrets {
			winner[v.Name] = v.Value
		}
		for n, want := range winner {
			if slices.Contains(spec.Scrub, n) {
				continue
			}
			if got, ok := seen[n]; !ok || got != want {
				t.Fatalf("secret %s = %q, want %q", n, got, want)
			}
		}
		for _, kv := range spec.Inherited {
			name, _, _ := strings.Cut(kv, "=")
			if strings.HasPrefix(name, "RUNSECRETS_") {
				if _, ok := winner[name]; !ok && !inFiles(spec.Files, name) {
					if _, ok := seen[name]; ok {
						t.Fatalf("setting %s was inherited", name)
					}
				}
			}
		}
	})
}

func splitNUL(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

// vars reads NAME=VALUE entries separated by NUL; a value may not hold a
// NUL then, so NULs in values come from the "\x01" placeholder.
func vars(s string) []Var {
	var out []Var
	for _, kv := range splitNUL(s) {
		name, value, _ := strings.Cut(kv, "=")
		out = append(out, Var{Name: name, Value: strings.ReplaceAll(value, "\x01", "\x00")})
	}
	return out
}

func inFiles(files []Var, name string) bool {
	for _, v := range files {
		if v.Name == name {
			return true
		}
	}
	return false
}
