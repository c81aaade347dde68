package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGetMappings(t *testing.T) {
	t.Parallel()
	maps, err := getMappings([]string{"db-pass", "Api-Key/0123456789abcdef0123456789abcdef", "db-pass", "https://kv2.vault.azure.net/secrets/tls-key"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range maps {
		got = append(got, m.Env+"="+m.Written)
	}
	want := []string{"DB_PASS=db-pass", "API_KEY=Api-Key/0123456789abcdef0123456789abcdef", "TLS_KEY=https://kv2.vault.azure.net/secrets/tls-key"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mappings (-want +got):\n%s", diff)
	}

	_, err = getMappings([]string{"db-pass", "DB-PASS/0123456789abcdef0123456789abcdef", "DB_PASS"})
	var msgs []string
	for _, e := range leaves(err) {
		msgs = append(msgs, e.Error())
	}
	want = []string{
		"db-pass and DB-PASS/0123456789abcdef0123456789abcdef would both print as DB_PASS",
		`invalid reference "DB_PASS": secret names cannot contain '_'`,
	}
	if diff := cmp.Diff(want, msgs); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if exitCode(err) != exitUsage {
		t.Errorf("exit status %d, want %d", exitCode(err), exitUsage)
	}
}
