package resolve

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/google/go-cmp/cmp"

	"github.com/runsecrets/runsecrets/resolve/vaulttest"
)

const pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIAb5yZbTqUAj3ls3eR4oT7x9Qm1cO0sJ2tQx8bV8n0wPoAoGCCqGSM49\n-----END EC PRIVATE KEY-----\n"

func TestKeyVaultSet(t *testing.T) {
	t.Parallel()
	srv, kv, url := wireVault(t, &azfake.TokenCredential{}, 4)
	ctx := context.Background()
	exp := time.Now().Add(72 * time.Hour).Truncate(time.Second)
	nbf := time.Now().Add(-time.Hour).Truncate(time.Second)
	s, f := kv.Set(ctx, url, "tls-key", pem, SetOptions{
		ContentType: "application/x-pem-file",
		Tags:        map[string]string{"team": "ml", "owner": "ana"},
		Expires:     exp, NotBefore: nbf,
	})
	if f != nil {
		t.Fatal(f)
	}
	if s.Value != "" {
		t.Error("Set returned the value")
	}
	got, ok := srv.Get(vaulttest.DefaultVault, "tls-key", "")
	if !ok {
		t.Fatal("the vault has no tls-key")
	}
	if got.Value != pem || got.Version != s.Version || got.ContentType != "application/x-pem-file" ||
		!got.Expires.Equal(exp) || !got.NotBefore.Equal(nbf) || !got.Enabled {
		t.Errorf("stored %+v, returned version %s", got, s.Version)
	}
	if diff := cmp.Diff(map[string]string{"team": "ml", "owner": "ana"}, got.Tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	if s.Name != "tls-key" || !s.Expires.Equal(exp) || s.ContentType != "application/x-pem-file" {
		t.Errorf("returned attributes %+v", s)
	}

	// A second set is a new version; the first stays.
	s2, f := kv.Set(ctx, url, "TLS-KEY", "rotated", SetOptions{})
	if f != nil {
		t.Fatal(f)
	}
	vers := srv.Versions(vaulttest.DefaultVault, "tls-key")
	if len(vers) != 2 || vers[0].Value != pem || vers[1].Value != "rotated" || vers[1].Version != s2.Version || s2.Version == s.Version {
		t.Errorf("versions after a second set: %+v", vers)
	}
}

func TestKeyVaultSetFailures(t *testing.T) {
	t.Parallel()
	srv, kv, url := wireVault(t, &azfake.TokenCredential{}, 4)
	ctx := context.Background()

	// Transient faults are retried; the value is stored once.
	srv.AddFault(vaulttest.Fault{Times: 2, Status: 503})
	if _, f := kv.Set(ctx, url, "a", "v", SetOptions{}); f != nil {
		t.Fatalf("503s were not retried: %v", f)
	}
	if n := len(srv.Versions(vaulttest.DefaultVault, "a")); n != 1 {
		t.Errorf("%d versions, want 1", n)
	}

	// A refusal names the write role.
	srv.AddFault(vaulttest.Fault{Times: 1, Status: 403})
	_, f := kv.Set(ctx, url, "a", "v2", SetOptions{})
	if f == nil || f.Kind != KindDenied || !strings.Contains(f.Cause, "may not write") || !strings.Contains(f.Hint, "Key Vault Secrets Officer") {
		t.Errorf("403 on set: %+v", f)
	}

	// The vault's own refusal of a bad request is a usage error.
	_, f = kv.Set(ctx, url, "a", "v", SetOptions{ContentType: strings.Repeat("x", 300)})
	if f == nil || f.Kind != KindUsage || !strings.Contains(f.Cause, "contentType") {
		t.Errorf("400 on set: %+v", f)
	}

	// The timeout bounds the retries.
	srv.AddFault(vaulttest.Fault{Times: -1, Status: 503})
	defer srv.ClearFaults()
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, f = kv.Set(tctx, url, "a", "v", SetOptions{})
	if f == nil || f.Kind != KindUnavailable || !strings.HasPrefix(f.Cause, "the timeout ran out") {
		t.Errorf("endless 503 on set: %+v", f)
	}
}

func TestKeyVaultList(t *testing.T) {
	t.Parallel()
	srv, kv, url := wireVault(t, &azfake.TokenCredential{}, 4)
	srv.SetPageSize(2)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	for _, n := range []string{"e", "C", "a", "d", "b"} {
		srv.Set(vaulttest.DefaultVault, n, "CANARY-"+n)
	}
	srv.Set(vaulttest.DefaultVault, "d", "CANARY-d2", vaulttest.ContentType("text/plain"), vaulttest.Expires(exp),
		vaulttest.Tags(map[string]string{"k": "v"}), vaulttest.Enabled(false))
	// A throttled page makes the listing start again.
	srv.AddFault(vaulttest.Fault{Times: 1, Status: 429})
	got, f := kv.List(context.Background(), url)
	if f != nil {
		t.Fatal(f)
	}
	var names []string
	for _, s := range got {
		names = append(names, s.Name)
		if s.Value != "" {
			t.Errorf("%s listed with a value", s.Name)
		}
		if s.Updated.IsZero() {
			t.Errorf("%s listed without its updated time", s.Name)
		}
	}
	if diff := cmp.Diff([]string{"a", "b", "C", "d", "e"}, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	d := got[3]
	if d.Enabled || d.ContentType != "text/plain" || !d.Expires.Equal(exp) || d.Tags["k"] != "v" {
		t.Errorf("d listed as %+v", d)
	}
	pages := 0
	for _, e := range srv.Log() {
		if e.Path == "/secrets" && e.Status == 200 {
			pages++
		}
	}
	if pages != 3 {
		t.Errorf("%d pages served, want 3", pages)
	}

	srv.AddFault(vaulttest.Fault{Times: 1, Status: 403})
	_, f = kv.List(context.Background(), url)
	if f == nil || f.Kind != KindDenied || !strings.Contains(f.Cause, "may not list") || !strings.Contains(f.Hint, "'list'") {
		t.Errorf("403 on list: %+v", f)
	}
}

func TestFetchEach(t *testing.T) {
	t.Parallel()
	srv, kv, url := wireVault(t, &azfake.TokenCredential{}, 4)
	now := time.Now()
	srv.Set(vaulttest.DefaultVault, "ok", "v")
	srv.Set(vaulttest.DefaultVault, "soon", "v", vaulttest.Expires(now.Add(24*time.Hour)))
	srv.Set(vaulttest.DefaultVault, "later", "v", vaulttest.Expires(now.Add(100*time.Hour)))
	srv.Set(vaulttest.DefaultVault, "old", "v", vaulttest.Expires(now.Add(-time.Hour)))
	maps, err := Collect(Sources{Maps: []string{"OK=ok", "SOON=soon", "LATER=later", "OLD=old", "GONE=gone"}})
	if err != nil {
		t.Fatal(err)
	}
	plan := Plan(maps, url, "")
	causes := func(outs []Outcome) []string {
		var out []string
		for _, o := range outs {
			c := "ok"
			if o.Err != nil {
				c, _, _ = strings.Cut(o.Err.Cause, " at ")
			}
			out = append(out, fmt.Sprintf("%s: %s", o.Env, c))
		}
		return out
	}
	outs := FetchEach(context.Background(), plan, kv, now, 0)
	want := []string{"OK: ok", "SOON: ok", "LATER: ok", "OLD: the secret expired", "GONE: not found in the vault"}
	if diff := cmp.Diff(want, causes(outs)); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	if outs[3].Secret.Expires.IsZero() || outs[3].Secret.Version == "" {
		t.Errorf("an expired secret's outcome lost its attributes: %+v", outs[3].Secret)
	}
	outs = FetchEach(context.Background(), plan, kv, now, 72*time.Hour)
	want[1] = "SOON: the secret expires"
	if diff := cmp.Diff(want, causes(outs)); diff != "" {
		t.Errorf("outcomes within 72h (-want +got):\n%s", diff)
	}
	if e := outs[1].Err; e.Kind() != KindMissing || !strings.HasSuffix(e.Cause, ", within 72h") {
		t.Errorf("expiring soon: %v (%v)", e, e.Kind())
	}
	_, err = Values(outs)
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 3 || errs.Kind() != KindMissing {
		t.Errorf("Values = %v, want three missing", err)
	}
}

func TestCheckValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value, want string
	}{
		{"ok", "hunter2", ""},
		{"PEM", pem, ""},
		{"exactly 25 KB", strings.Repeat("x", MaxValueBytes), ""},
		{"empty", "", "the value is empty"},
		{"too big", strings.Repeat("x", MaxValueBytes+1), "the value is 25601 bytes; Key Vault stores at most 25600"},
		{"binary", "\xff\xfe", "the value is not valid UTF-8 text; Key Vault stores text only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckValue(tt.value)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("CheckValue = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestShortDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		72 * time.Hour: "72h", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s", 30 * time.Second: "30s", 2 * time.Minute: "2m",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
