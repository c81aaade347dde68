package launcher

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestBuildEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec EnvSpec
		fold bool // Windows rules
		want Env
	}{
		{
			name: "empty",
			want: Env{Vars: []string{}},
		},
		{
			name: "inherited sorted by name not by entry",
			spec: EnvSpec{Inherited: []string{"B=2", "A0=x", "A=1"}},
			want: Env{Vars: []string{"A=1", "A0=x", "B=2"}},
		},
		{
			name: "inherited last duplicate wins",
			spec: EnvSpec{Inherited: []string{"A=1", "B=2", "A=3"}},
			want: Env{Vars: []string{"A=3", "B=2"}},
		},
		{
			name: "inherited malformed entries dropped",
			spec: EnvSpec{Inherited: []string{"NOEQUALS", "", "=nameless", "OK=1"}},
			want: Env{Vars: []string{"OK=1"}},
		},
		{
			name: "value keeps equals signs and empty value kept",
			spec: EnvSpec{Inherited: []string{"A=b=c", "E="}},
			want: Env{Vars: []string{"A=b=c", "E="}},
		},
		{
			name: "runsecrets settings dropped from inherited only",
			spec: EnvSpec{
				Inherited: []string{"RUNSECRETS_MAP=DB=db", "RUNSECRETS_TIMEOUT=5s", "RUNSECRETSX=1", "runsecrets_lower=1"},
				Files:     []Var{{"RUNSECRETS_FROM_FILE", "f"}},
				Runtime:   []Var{{"RUNSECRETS_MANIFEST", "/tmp/m.json"}},
			},
			want: Env{Vars: []string{"RUNSECRETSX=1", "RUNSECRETS_FROM_FILE=f", "RUNSECRETS_MANIFEST=/tmp/m.json", "runsecrets_lower=1"}},
		},
		{
			name: "files override inherited and later file wins",
			spec: EnvSpec{
				Inherited: []string{"A=inh", "B=inh"},
				Files:     []Var{{"A", "f1"}, {"C", "f1"}, {"A", "f2"}},
			},
			want: Env{Vars: []string{"A=f2", "B=inh", "C=f1"}},
		},
		{
			name: "secrets override files and inherited and are reported",
			spec: EnvSpec{
				Inherited: []string{"DB_PASS=old", "HOME=/root"},
				Files:     []Var{{"API_KEY", "fromfile"}},
				Secrets:   []Var{{"DB_PASS", "s1"}, {"API_KEY", "s2"}, {"NEW", "s3"}},
			},
			want: Env{
				Vars:       []string{"API_KEY=s2", "DB_PASS=s1", "HOME=/root", "NEW=s3"},
				Overridden: []string{"API_KEY", "DB_PASS"},
			},
		},
		{
			name: "secret over a dropped runsecrets setting is no override",
			spec: EnvSpec{
				Inherited: []string{"RUNSECRETS_X=1"},
				Secrets:   []Var{{"RUNSECRETS_X", "s"}},
			},
			want: Env{Vars: []string{"RUNSECRETS_X=s"}},
		},
		{
			name: "duplicate secret is no override",
			spec: EnvSpec{Secrets: []Var{{"A", "1"}, {"A", "2"}}},
			want: Env{Vars: []string{"A=2"}},
		},
		{
			name: "runtime wins and is never an override",
			spec: EnvSpec{
				Inherited: []string{"RUNSECRETS_MANIFEST=inh", "X=inh"},
				Secrets:   []Var{{"RUNSECRETS_MANIFEST", "sec"}},
				Runtime:   []Var{{"RUNSECRETS_MANIFEST", "/run/m.json"}, {"X", "rt"}},
			},
			want: Env{Vars: []string{"RUNSECRETS_MANIFEST=/run/m.json", "X=rt"}},
		},
		{
			name: "scrub removes from every layer and from overrides",
			spec: EnvSpec{
				Inherited: []string{"AZURE_CLIENT_SECRET=x", "MSI_SECRET=y", "KEEP=1"},
				Secrets:   []Var{{"MSI_SECRET", "s"}},
				Scrub:     []string{"AZURE_CLIENT_SECRET", "MSI_SECRET", "ABSENT"},
			},
			want: Env{Vars: []string{"KEEP=1"}},
		},
		{
			name: "case sensitive names on unix",
			spec: EnvSpec{
				Inherited: []string{"Path=a", "PATH=b"},
				Secrets:   []Var{{"path", "s"}},
				Scrub:     []string{"PATH"},
			},
			want: Env{Vars: []string{"Path=a", "path=s"}},
		},
		{
			name: "windows case insensitive with winner spelling",
			fold: true,
			spec: EnvSpec{
				Inherited: []string{"Path=a", "PATH=b", "Temp=t", "runsecrets_map=x"},
				Secrets:   []Var{{"path", "s"}},
			},
			want: Env{Vars: []string{"path=s", "Temp=t"}, Overridden: []string{"path"}},
		},
		{
			name: "windows scrub case insensitive",
			fold: true,
			spec: EnvSpec{
				Inherited: []string{"Azure_Client_Secret=x", "b=1"},
				Scrub:     []string{"AZURE_CLIENT_SECRET"},
			},
			want: Env{Vars: []string{"b=1"}},
		},
		{
			name: "windows drive directory variables kept",
			fold: true,
			spec: EnvSpec{Inherited: []string{"=C:=C:\\work", "=D:=D:\\", "A=1", "=bogus"}},
			want: Env{Vars: []string{"=C:=C:\\work", "=D:=D:\\", "A=1"}},
		},
		{
			name: "nul in a replaced or scrubbed variable is fine",
			spec: EnvSpec{
				Inherited: []string{"A=x\x00y", "B=\x00", "RUNSECRETS_Z=\x00"},
				Secrets:   []Var{{"A", "clean"}},
				Scrub:     []string{"B"},
			},
			want: Env{Vars: []string{"A=clean"}, Overridden: []string{"A"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := buildEnv(tt.spec, tt.fold)
			if err != nil {
				t.Fatalf("buildEnv: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("buildEnv mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildEnvErrors(t *testing.T) {
	t.Parallel()
	const canary = "canary-\x00-s3cr3t"
	tests := []struct {
		name string
		spec EnvSpec
		want error
	}{
		{
			name: "nul in secret value",
			spec: EnvSpec{Secrets: []Var{{"DB_PASS", canary}}},
			want: &NULError{Name: "DB_PASS", Layer: LayerSecret},
		},
		{
			name: "nul in inherited value",
			spec: EnvSpec{Inherited: []string{"HOME=" + canary}},
			want: &NULError{Name: "HOME", Layer: LayerInherited},
		},
		{
			name: "nul in env file name",
			spec: EnvSpec{Files: []Var{{"A\x00B", "v"}}},
			want: &NULError{Name: "A\x00B", Layer: LayerFile},
		},
		{
			name: "nul in runtime value",
			spec: EnvSpec{Runtime: []Var{{"RUNSECRETS_MANIFEST", canary}}},
			want: &NULError{Name: "RUNSECRETS_MANIFEST", Layer: LayerRuntime},
		},
		{
			name: "empty secret name",
			spec: EnvSpec{Secrets: []Var{{"", canary}}},
			want: &NameError{Name: "", Layer: LayerSecret},
		},
		{
			name: "equals in file name",
			spec: EnvSpec{Files: []Var{{"A=B", canary}}},
			want: &NameError{Name: "A=B", Layer: LayerFile},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := buildEnv(tt.spec, false)
			if diff := cmp.Diff(tt.want, err); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
			if err != nil && strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q contains the value", err)
			}
			var nul *NULError
			if _, isNUL := tt.want.(*NULError); isNUL && !errors.As(err, &nul) {
				t.Errorf("errors.As(%v, *NULError) = false", err)
			}
		})
	}
}

func TestNULErrorMessage(t *testing.T) {
	t.Parallel()
	err := &NULError{Name: "DB_PASS", Layer: LayerSecret}
	want := `environment variable "DB_PASS" from a secret contains a NUL byte`
	if got := err.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestLookupEnv(t *testing.T) {
	t.Parallel()
	env := []string{"PATH=/a", "X=1", "PATH=/b", "Path=/c"}
	tests := []struct {
		name   string
		key    string
		fold   bool
		want   string
		wantOK bool
	}{
		{name: "last exact wins", key: "PATH", want: "/b", wantOK: true},
		{name: "fold finds later spelling", key: "PATH", fold: true, want: "/c", wantOK: true},
		{name: "absent", key: "HOME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := lookupEnv(env, tt.key, tt.fold)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("lookupEnv(%q) = %q, %v; want %q, %v", tt.key, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
