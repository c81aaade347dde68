package resolve

import (
	"fmt"
	"net/url"
	"strings"
)

// VaultSuffixes are the Key Vault DNS suffixes a full secret identifier may
// use: Azure public cloud, Azure China and Azure US Government.
var VaultSuffixes = []string{".vault.azure.net", ".vault.azure.cn", ".vault.usgovcloudapi.net"}

// Ref is one parsed secret reference.
type Ref struct {
	// Vault is empty when the reference names no vault (the run context's
	// vault serves it), a vault URL such as https://myvault.vault.azure.net
	// for the identifier forms, or a bare vault name for
	// @Microsoft.KeyVault(VaultName=...), whose DNS suffix is the run
	// context's cloud.
	Vault string
	// Name is the secret name as written; Key Vault compares names
	// case-insensitively.
	Name string
	// Version is empty for the latest version, else 32 lower-case hex digits.
	Version string
}

// String returns the reference in its shortest written form.
func (r Ref) String() string {
	s := r.Name
	if r.Version != "" {
		s += "/" + r.Version
	}
	switch {
	case r.Vault == "":
		return s
	case strings.Contains(r.Vault, "://"):
		return r.Vault + "/secrets/" + s
	default:
		return "@Microsoft.KeyVault(VaultName=" + r.Vault + ";SecretName=" + r.Name + versionPart(r.Version) + ")"
	}
}

func versionPart(v string) string {
	if v == "" {
		return ""
	}
	return ";SecretVersion=" + v
}

// VaultURL returns the URL of the vault that serves r: its own vault when it
// names one, else contextVault. suffix completes a bare vault name.
func (r Ref) VaultURL(contextVault, suffix string) string {
	switch {
	case r.Vault == "":
		return contextVault
	case strings.Contains(r.Vault, "://"):
		return r.Vault
	default:
		return "https://" + r.Vault + suffix
	}
}

// RefError is a reference that cannot be parsed.
type RefError struct {
	Ref    string // the reference as written
	Reason string
	Hint   string // what to write instead, if known
}

func (e *RefError) Error() string {
	return fmt.Sprintf("invalid reference %q: %s", e.Ref, e.Reason)
}

// Kind reports a usage error.
func (e *RefError) Kind() Kind { return KindUsage }

const kvPrefix = "@microsoft.keyvault("

// ParseRef parses one reference in any of the five forms of SPEC §2:
// NAME, NAME/VERSION, https://VAULT.vault.azure.net/secrets/NAME[/VERSION],
// @Microsoft.KeyVault(SecretUri=URI) and
// @Microsoft.KeyVault(VaultName=V;SecretName=N[;SecretVersion=X]).
func ParseRef(s string) (Ref, error) {
	in := strings.TrimSpace(s)
	bad := func(reason, hint string) (Ref, error) {
		return Ref{}, &RefError{Ref: s, Reason: reason, Hint: hint}
	}
	if in == "" {
		return bad("it is empty", "give a secret name such as db-pass")
	}
	lower := strings.ToLower(in)
	switch {
	case strings.HasPrefix(lower, kvPrefix):
		if !strings.HasSuffix(in, ")") {
			return bad("@Microsoft.KeyVault( has no closing parenthesis", "")
		}
		r, reason, hint := parseAppServiceRef(in[len(kvPrefix) : len(in)-1])
		if reason != "" {
			return bad(reason, hint)
		}
		return r, nil
	case strings.HasPrefix(lower, "https://"), strings.HasPrefix(lower, "http://"):
		r, reason, hint := parseSecretURL(in)
		if reason != "" {
			return bad(reason, hint)
		}
		return r, nil
	}
	name, version, _ := strings.Cut(in, "/")
	if reason, hint := CheckName(name); reason != "" {
		return bad(reason, hint)
	}
	version, reason := checkVersion(version)
	if reason != "" {
		return bad(reason, "copy the version from the portal or `az keyvault secret list-versions`")
	}
	return Ref{Name: name, Version: version}, nil
}

func parseAppServiceRef(inner string) (Ref, string, string) {
	var uri, vault, name, version string
	for part := range strings.SplitSeq(inner, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return Ref{}, fmt.Sprintf("%q is not KEY=VALUE", part), "write SecretUri=URI or VaultName=V;SecretName=N"
		}
		v = strings.TrimSpace(v)
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "secreturi":
			uri = v
		case "vaultname":
			vault = v
		case "secretname":
			name = v
		case "secretversion":
			version = v
		default:
			return Ref{}, fmt.Sprintf("unknown key %q", k), "the keys are SecretUri, or VaultName, SecretName and SecretVersion"
		}
	}
	if uri != "" {
		if vault != "" || name != "" || version != "" {
			return Ref{}, "SecretUri cannot be combined with VaultName, SecretName or SecretVersion", ""
		}
		return parseSecretURL(uri)
	}
	if vault == "" || name == "" {
		return Ref{}, "it needs SecretUri, or both VaultName and SecretName", "write @Microsoft.KeyVault(VaultName=myvault;SecretName=db-pass)"
	}
	if reason := checkVaultName(vault); reason != "" {
		return Ref{}, reason, ""
	}
	if reason, hint := CheckName(name); reason != "" {
		return Ref{}, reason, hint
	}
	version, reason := checkVersion(version)
	if reason != "" {
		return Ref{}, reason, ""
	}
	return Ref{Vault: strings.ToLower(vault), Name: name, Version: version}, "", ""
}

func parseSecretURL(raw string) (Ref, string, string) {
	u, err := url.Parse(raw)
	if err != nil {
		return Ref{}, "it is not a URL", ""
	}
	if !strings.EqualFold(u.Scheme, "https") {
		return Ref{}, "a Key Vault URL must use https", "write https://VAULT.vault.azure.net/secrets/NAME"
	}
	host := strings.ToLower(u.Hostname())
	if p := u.Port(); p != "" && p != "443" {
		return Ref{}, "a Key Vault URL has no port other than 443", ""
	}
	if !hasVaultSuffix(host) {
		return Ref{}, fmt.Sprintf("host %q is not a Key Vault host", host), "the host ends in " + strings.Join(VaultSuffixes, ", ")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return Ref{}, "a secret identifier has no query, fragment or user", ""
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] != "secrets" {
		return Ref{}, "the path is not /secrets/NAME[/VERSION]", "copy the Secret Identifier from the portal"
	}
	if reason, hint := CheckName(parts[1]); reason != "" {
		return Ref{}, reason, hint
	}
	var version string
	if len(parts) == 3 {
		var reason string
		if version, reason = checkVersion(parts[2]); reason != "" {
			return Ref{}, reason, ""
		}
	}
	return Ref{Vault: "https://" + host, Name: parts[1], Version: version}, "", ""
}

func hasVaultSuffix(host string) bool {
	for _, s := range VaultSuffixes {
		if len(host) > len(s) && strings.HasSuffix(host, s) && checkVaultName(strings.TrimSuffix(host, s)) == "" {
			return true
		}
	}
	return false
}

// CheckName validates a secret name: 1-127 characters of 0-9 a-z A-Z and -.
// It returns why the name is not valid and, when a valid name is near (DB_PASS
// for db-pass), a hint that spells it; or two empty strings.
func CheckName(name string) (reason, hint string) {
	if name == "" {
		return "the secret name is empty", ""
	}
	if len(name) > 127 {
		return "a secret name is at most 127 characters", ""
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isAlnum(c) || c == '-' {
			continue
		}
		if c == '_' {
			if fixed := SecretNameFor(name); checkNameChars(fixed) {
				return "secret names cannot contain '_'",
					fmt.Sprintf("Key Vault names use '-': write %s", fixed)
			}
		}
		return "secret names are letters, digits and '-' only", ""
	}
	return "", ""
}

func checkNameChars(name string) bool {
	for i := 0; i < len(name); i++ {
		if !isAlnum(name[i]) && name[i] != '-' {
			return false
		}
	}
	return name != "" && len(name) <= 127
}

// SecretNameFor returns the secret name an environment variable name stands
// for: lower case with '_' written as '-' (DB_PASS → db-pass).
func SecretNameFor(env string) string {
	return strings.ToLower(strings.ReplaceAll(env, "_", "-"))
}

func checkVersion(v string) (string, string) {
	if v == "" {
		return "", ""
	}
	if len(v) != 32 {
		return "", fmt.Sprintf("version %q is not 32 hex digits", v)
	}
	for i := 0; i < len(v); i++ {
		if !isHex(v[i]) {
			return "", fmt.Sprintf("version %q is not 32 hex digits", v)
		}
	}
	return strings.ToLower(v), ""
}

// checkVaultName validates a vault name: 3-24 characters of letters, digits
// and '-', starting with a letter.
func checkVaultName(v string) string {
	if len(v) < 3 || len(v) > 24 {
		return fmt.Sprintf("vault name %q is not 3-24 characters", v)
	}
	for i := 0; i < len(v); i++ {
		if !isAlnum(v[i]) && v[i] != '-' {
			return fmt.Sprintf("vault name %q has a character other than letters, digits and '-'", v)
		}
	}
	return ""
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
