package resolve

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const ver = "0123456789abcdef0123456789abcdef"

func TestParseRef(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want Ref
	}{
		{"name", "db-pass", Ref{Name: "db-pass"}},
		{"name keeps case", "DB-Pass", Ref{Name: "DB-Pass"}},
		{"name trimmed", "  db-pass ", Ref{Name: "db-pass"}},
		{"name 127 chars", strings.Repeat("a", 127), Ref{Name: strings.Repeat("a", 127)}},
		{"pinned", "db-pass/" + ver, Ref{Name: "db-pass", Version: ver}},
		{"pinned upper hex lowered", "db-pass/" + strings.ToUpper(ver), Ref{Name: "db-pass", Version: ver}},
		{"url", "https://myvault.vault.azure.net/secrets/db-pass", Ref{Vault: "https://myvault.vault.azure.net", Name: "db-pass"}},
		{"url trailing slash", "https://myvault.vault.azure.net/secrets/db-pass/", Ref{Vault: "https://myvault.vault.azure.net", Name: "db-pass"}},
		{"url version", "https://myvault.vault.azure.net/secrets/db-pass/" + ver, Ref{Vault: "https://myvault.vault.azure.net", Name: "db-pass", Version: ver}},
		{"url host case and port", "https://MyVault.Vault.Azure.Net:443/secrets/db-pass", Ref{Vault: "https://myvault.vault.azure.net", Name: "db-pass"}},
		{"url china", "https://v-cn.vault.azure.cn/secrets/x", Ref{Vault: "https://v-cn.vault.azure.cn", Name: "x"}},
		{"url usgov", "https://gov1.vault.usgovcloudapi.net/secrets/x", Ref{Vault: "https://gov1.vault.usgovcloudapi.net", Name: "x"}},
		{"app service uri", "@Microsoft.KeyVault(SecretUri=https://myvault.vault.azure.net/secrets/db-pass/" + ver + ")",
			Ref{Vault: "https://myvault.vault.azure.net", Name: "db-pass", Version: ver}},
		{"app service parts", "@Microsoft.KeyVault(VaultName=myvault;SecretName=db-pass)", Ref{Vault: "myvault", Name: "db-pass"}},
		{"app service parts version", "@Microsoft.KeyVault(VaultName=MyVault;SecretName=db-pass;SecretVersion=" + ver + ")",
			Ref{Vault: "myvault", Name: "db-pass", Version: ver}},
		{"app service case and spaces", "@microsoft.keyvault( secretname = db-pass ; vaultname = myvault ; )", Ref{Vault: "myvault", Name: "db-pass"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseRef(tt.in)
			if err != nil {
				t.Fatalf("ParseRef(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseRef(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseRefErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		reason   string // substring of the reason
		hint     string // substring of the hint, if any
	}{
		{"empty", "", "empty", ""},
		{"underscore", "DB_PASS", "cannot contain '_'", "write db-pass"},
		{"underscore in url", "https://kv1.vault.azure.net/secrets/db_pass", "cannot contain '_'", "write db-pass"},
		{"bad char", "db.pass", "letters, digits and '-'", ""},
		{"too long", strings.Repeat("a", 128), "at most 127", ""},
		{"short version", "db-pass/123", "32 hex", ""},
		{"non-hex version", "db-pass/" + strings.Repeat("g", 32), "32 hex", ""},
		{"three segments", "a/" + ver + "/c", "32 hex", ""},
		{"http", "http://v1.vault.azure.net/secrets/x", "https", ""},
		{"not a vault", "https://example.com/secrets/x", "not a Key Vault host", ".vault.azure.net"},
		{"vault suffix only", "https://vault.azure.net/secrets/x", "not a Key Vault host", ""},
		{"other port", "https://kv1.vault.azure.net:8443/secrets/x", "port", ""},
		{"wrong path", "https://kv1.vault.azure.net/keys/x", "/secrets/NAME", "Secret Identifier"},
		{"no name", "https://kv1.vault.azure.net/secrets", "/secrets/NAME", ""},
		{"query", "https://kv1.vault.azure.net/secrets/x?api-version=1", "no query", ""},
		{"unclosed", "@Microsoft.KeyVault(VaultName=kv1;SecretName=x", "closing parenthesis", ""},
		{"no name part", "@Microsoft.KeyVault(VaultName=myvault)", "VaultName and SecretName", ""},
		{"unknown key", "@Microsoft.KeyVault(Vault=myvault;SecretName=x)", "unknown key", ""},
		{"bad vault name", "@Microsoft.KeyVault(VaultName=v;SecretName=x)", "3-24", ""},
		{"uri and parts", "@Microsoft.KeyVault(SecretUri=https://kv1.vault.azure.net/secrets/x;SecretName=y)", "cannot be combined", ""},
		{"no equals", "@Microsoft.KeyVault(myvault)", "KEY=VALUE", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseRef(tt.in)
			var re *RefError
			if !errors.As(err, &re) {
				t.Fatalf("ParseRef(%q) = %v, want a *RefError", tt.in, err)
			}
			if !strings.Contains(re.Reason, tt.reason) {
				t.Errorf("reason %q lacks %q", re.Reason, tt.reason)
			}
			if !strings.Contains(re.Hint, tt.hint) {
				t.Errorf("hint %q lacks %q", re.Hint, tt.hint)
			}
			if re.Kind() != KindUsage {
				t.Errorf("kind = %v, want usage", re.Kind())
			}
		})
	}
}

func TestRefStringRoundTrips(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"db-pass", "db-pass/" + ver,
		"https://myvault.vault.azure.net/secrets/db-pass/" + ver,
		"@Microsoft.KeyVault(VaultName=myvault;SecretName=db-pass;SecretVersion=" + ver + ")",
	} {
		r, err := ParseRef(in)
		if err != nil {
			t.Fatal(err)
		}
		if r.String() != in {
			t.Errorf("String() = %q, want %q", r.String(), in)
		}
		again, err := ParseRef(r.String())
		if err != nil || again != r {
			t.Errorf("ParseRef(String()) = %+v, %v; want %+v", again, err, r)
		}
	}
}

func TestVaultURL(t *testing.T) {
	t.Parallel()
	ctx := "https://ctx.vault.azure.net"
	tests := []struct {
		ref  Ref
		want string
	}{
		{Ref{Name: "x"}, ctx},
		{Ref{Vault: "https://other.vault.azure.net", Name: "x"}, "https://other.vault.azure.net"},
		{Ref{Vault: "byname", Name: "x"}, "https://byname.vault.azure.cn"},
	}
	for _, tt := range tests {
		if got := tt.ref.VaultURL(ctx, ".vault.azure.cn"); got != tt.want {
			t.Errorf("%+v.VaultURL = %q, want %q", tt.ref, got, tt.want)
		}
	}
}

func TestSecretNameFor(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"DB_PASS": "db-pass", "API_KEY_2": "api-key-2", "token": "token"} {
		if got := SecretNameFor(in); got != want {
			t.Errorf("SecretNameFor(%q) = %q, want %q", in, got, want)
		}
		if back := EnvKeyFor(want); !strings.EqualFold(back, in) {
			t.Errorf("EnvKeyFor(%q) = %q, want %q", want, back, strings.ToUpper(in))
		}
	}
}
