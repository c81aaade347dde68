package resolve

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestManifestRoundTripAndNoValues(t *testing.T) {
	t.Parallel()
	const canary = "CANARY-manifest-value"
	maps, err := Collect(Sources{Maps: []string{"DB_PASS=db-pass", "KEY=https://other.vault.azure.net/secrets/k"}})
	if err != nil {
		t.Fatal(err)
	}
	plan := Plan(maps, testVault, ".vault.azure.net")
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	values := []Value{
		{Planned: plan[0], Secret: Secret{Value: canary, Name: "db-pass", Version: ver, Enabled: true, Created: created, ContentType: "text/plain"}},
		{Planned: plan[1], Secret: Secret{Value: canary + "2", Name: "k", Version: strings.Repeat("1", 32), Enabled: true}},
	}
	m := NewManifest(ManifestContext{Kind: "vault", IdentityKind: "default"}, values, time.Date(2026, 11, 26, 12, 0, 0, 5, time.UTC))
	if diff := cmp.Diff([]string{"https://kv1.vault.azure.net", "https://other.vault.azure.net"}, m.Context.Vaults); diff != "" {
		t.Errorf("vaults (-want +got):\n%s", diff)
	}
	path := filepath.Join(t.TempDir(), "run.json")
	if err := WriteManifest(path, m); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), canary) {
		t.Fatalf("the manifest holds a value:\n%s", data)
	}
	back, err := ReadManifest(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	e := back.Secrets[0]
	if e.Env != "DB_PASS" || e.Reference != "db-pass" || e.From != "--map #1" || e.Version != ver || e.Created == nil || !e.Created.Equal(created) || e.Expires != nil {
		t.Errorf("entry = %+v", e)
	}
}

func TestReadManifestErrors(t *testing.T) {
	t.Parallel()
	for name, data := range map[string]string{
		"not json":  "{",
		"no format": `{"secrets": []}`,
		"too new":   `{"format": 99}`,
	} {
		var fe *FileError
		if _, err := ReadManifest("m.json", []byte(data)); !errors.As(err, &fe) || fe.Kind() != KindUsage {
			t.Errorf("%s: ReadManifest = %v, want a usage FileError", name, err)
		}
	}
}

func TestManifestPin(t *testing.T) {
	t.Parallel()
	m := Manifest{Format: 1, Secrets: []ManifestEntry{
		{Env: "A", Name: "a", Vault: testVault, Version: ver},
		{Env: "B", Name: "b", Vault: testVault, Version: ver},
		{Env: "LOCAL", Name: "l", Local: true},
	}}
	maps, _ := Collect(Sources{Maps: []string{"A=a", "B=https://other.vault.azure.net/secrets/B"}})
	got, err := m.Pin(maps, "lock.json")
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Ref != (Ref{Vault: testVault, Name: "a", Version: ver}) {
		t.Errorf("A pinned to %+v", got[0].Ref)
	}
	if got[1].Ref != (Ref{Vault: "https://other.vault.azure.net", Name: "B", Version: ver}) {
		t.Errorf("B pinned to %+v: a reference's own vault stays", got[1].Ref)
	}

	maps, _ = Collect(Sources{Maps: []string{"A=other", "NEW=new", "LOCAL=l", "B=b/" + strings.Repeat("2", 32)}})
	_, err = m.Pin(maps, "lock.json")
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 4 || errs.Kind() != KindMissing {
		t.Fatalf("Pin = %v, want 4 missing", err)
	}
	for i, want := range []string{"records secret a, not other", "not in the lock file", "records no version", "the mapping pins version"} {
		if !strings.Contains(errs[i].Error(), want) {
			t.Errorf("error %d = %q, want %q", i, errs[i], want)
		}
	}
}
