// Package vaulttest is a fake Azure Key Vault secrets data plane for tests, in
// the spirit of net/http/httptest.
//
// A Server is an http.Handler that speaks the Key Vault REST API closely
// enough for the real azsecrets client: challenge authentication (a request
// without a bearer token gets the 401 challenge naming the tenant and the
// vault's resource), get by name or version, set, update properties, and the
// paged listings of secrets and versions, with Key Vault's JSON shapes and
// error bodies. One Server serves many vaults: the vault is the first label of
// a Key Vault host name (*.vault.azure.net, *.vault.azure.cn,
// *.vault.usgovcloudapi.net); any other host, such as 127.0.0.1:port, is the
// vault named DefaultVault.
//
// Tests arrange state directly (Set, Update, Disable, DeleteVersion, Delete),
// inject faults (AddFault, SetThrottle, SetLatency) and observe what clients
// did (Stats, Log). Faults and throttling only affect requests that passed
// authentication, so the challenge exchange is never disturbed. Secret names
// are case-insensitive, as in Key Vault. Vaults come into existence on first
// use. A Server is safe for concurrent use.
package vaulttest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultTenant is the tenant named in challenges unless WithTenant or
// SetVaultTenant says otherwise.
const DefaultTenant = "7f3a1c9e-5b2d-4e8f-9a6c-0d1e2f3a4b5c"

// DefaultVault is the vault served for hosts that are not Key Vault host
// names, such as an httptest server's 127.0.0.1:port.
const DefaultVault = "default"

// DefaultPageSize is the list page size used when a request has no
// maxresults, as in Key Vault.
const DefaultPageSize = 25

// MaxValueBytes is the largest secret value Key Vault accepts (25 KB).
const MaxValueBytes = 25 * 1024

var (
	validName    = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	validVersion = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// TokenCheck decides whether a bearer token may be used at a vault whose
// challenge names resource (such as "https://vault.azure.net") and tenant.
// Returning false makes the server answer 401 with the challenge, as Key Vault
// does for a token with the wrong audience or issuer.
type TokenCheck func(token, resource, tenant string) bool

// Option configures a Server made by New.
type Option func(*Server)

// WithTenant sets the tenant named in challenges for every vault.
func WithTenant(tenant string) Option {
	return func(s *Server) { s.tenant = tenant }
}

// WithPageSize sets the list page size used when a request has no maxresults.
func WithPageSize(n int) Option {
	return func(s *Server) { s.pageSize = n }
}

// WithTokenCheck makes the server validate bearer tokens with check. Without
// it any non-empty bearer token is accepted.
func WithTokenCheck(check TokenCheck) Option {
	return func(s *Server) { s.check = check }
}

// Server is a fake Key Vault data plane. Make one with New or NewTLS.
type Server struct {
	check TokenCheck // set once by New

	mu       sync.Mutex
	tenant   string
	pageSize int
	vaults   map[string]*vault
	latency  time.Duration
	faults   []*Fault
	throttle throttle
	stats    Stats
	inFlight int
	log      []Entry
}

type vault struct {
	tenant  string             // overrides Server.tenant when set
	secrets map[string]*secret // by lower-case name
	window  int64              // current throttle window index
	inWin   int                // secret GETs counted in window
}

type secret struct {
	name     string           // as first written
	versions []*SecretVersion // oldest first; the last is current
}

// SecretVersion is one version of a secret as the server holds it.
type SecretVersion struct {
	Name        string // as first written
	Version     string // 32 lower-case hex digits
	Value       string
	ContentType string
	Enabled     bool
	NotBefore   time.Time // zero when unset
	Expires     time.Time // zero when unset
	Created     time.Time
	Updated     time.Time
	Tags        map[string]string
}

func (v *SecretVersion) clone() SecretVersion {
	c := *v
	c.Tags = maps.Clone(v.Tags)
	return c
}

// SetOption adjusts a secret version created by Set or changed by Update.
type SetOption func(*SecretVersion)

// ContentType sets the version's content type.
func ContentType(ct string) SetOption {
	return func(v *SecretVersion) { v.ContentType = ct }
}

// Enabled sets whether the version is enabled; disabled versions cannot be read.
func Enabled(enabled bool) SetOption {
	return func(v *SecretVersion) { v.Enabled = enabled }
}

// NotBefore sets the version's nbf attribute; the zero time clears it.
func NotBefore(t time.Time) SetOption {
	return func(v *SecretVersion) { v.NotBefore = t.Truncate(time.Second) }
}

// Expires sets the version's exp attribute; the zero time clears it.
func Expires(t time.Time) SetOption {
	return func(v *SecretVersion) { v.Expires = t.Truncate(time.Second) }
}

// Tags replaces the version's tags.
func Tags(tags map[string]string) SetOption {
	return func(v *SecretVersion) { v.Tags = maps.Clone(tags) }
}

// Created sets the version's created and updated times.
func Created(t time.Time) SetOption {
	return func(v *SecretVersion) {
		v.Created = t.Truncate(time.Second)
		v.Updated = v.Created
	}
}

// PinVersion gives the version a chosen identifier instead of a random one,
// for stable golden output. It must be 32 lower-case hex digits.
func PinVersion(id string) SetOption {
	return func(v *SecretVersion) { v.Version = id }
}

// New returns an empty Server.
func New(opts ...Option) *Server {
	s := &Server{
		tenant:   DefaultTenant,
		pageSize: DefaultPageSize,
		vaults:   map[string]*vault{},
		stats:    Stats{ByVault: map[string]int{}},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// NewTLS starts an httptest TLS server around a new Server and closes it when
// the test ends. Clients use ts.URL as the vault URL, ts.Client() as their
// transport and DisableChallengeResourceVerification, since 127.0.0.1 never
// matches the challenge's resource.
func NewTLS(tb testing.TB, opts ...Option) (*Server, *httptest.Server) {
	tb.Helper()
	s := New(opts...)
	ts := httptest.NewTLSServer(s)
	tb.Cleanup(ts.Close)
	return s, ts
}

// SetPageSize changes the list page size used when a request has no
// maxresults, as WithPageSize does at New; n < 1 means DefaultPageSize.
func (s *Server) SetPageSize(n int) {
	if n < 1 {
		n = DefaultPageSize
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = n
}

// vaultLocked returns the named vault, creating it. s.mu must be held.
func (s *Server) vaultLocked(name string) *vault {
	name = strings.ToLower(name)
	if name == "" {
		name = DefaultVault
	}
	v := s.vaults[name]
	if v == nil {
		v = &vault{secrets: map[string]*secret{}}
		s.vaults[name] = v
	}
	return v
}

// SetVaultTenant makes vault's challenge name tenant, as for a vault that
// lives in another tenant.
func (s *Server) SetVaultTenant(vault, tenant string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vaultLocked(vault).tenant = tenant
}

func (s *Server) tenantLocked(v *vault) string {
	if v.tenant != "" {
		return v.tenant
	}
	return s.tenant
}

// Set stores a new current version of the secret name in vault ("" means
// DefaultVault) and returns its version identifier. It panics when name is
// not a valid Key Vault secret name or a pinned version is malformed, which
// are mistakes in the test.
func (s *Server) Set(vault, name, value string, opts ...SetOption) string {
	if !validName.MatchString(name) {
		panic(fmt.Sprintf("vaulttest: invalid secret name %q", name))
	}
	now := time.Now().Truncate(time.Second)
	ver := &SecretVersion{Name: name, Value: value, Enabled: true, Created: now, Updated: now}
	for _, o := range opts {
		o(ver)
	}
	if ver.Version == "" {
		ver.Version = newVersion()
	}
	if !validVersion.MatchString(ver.Version) {
		panic(fmt.Sprintf("vaulttest: invalid secret version %q", ver.Version))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addLocked(s.vaultLocked(vault), ver)
	return ver.Version
}

func (s *Server) addLocked(v *vault, ver *SecretVersion) {
	key := strings.ToLower(ver.Name)
	sec := v.secrets[key]
	if sec == nil {
		sec = &secret{name: ver.Name}
		v.secrets[key] = sec
	}
	ver.Name = sec.name
	sec.versions = append(sec.versions, ver)
}

// Get returns a copy of a version of a secret; version "" means the current
// one. It reports false when there is no such secret or version.
func (s *Server) Get(vault, name, version string) (SecretVersion, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ver := s.findLocked(s.vaultLocked(vault), name, version)
	if ver == nil {
		return SecretVersion{}, false
	}
	return ver.clone(), true
}

// Versions returns copies of every version of a secret, oldest first; the
// last one is current. It returns nil for an unknown secret.
func (s *Server) Versions(vault, name string) []SecretVersion {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.vaultLocked(vault).secrets[strings.ToLower(name)]
	if sec == nil {
		return nil
	}
	out := make([]SecretVersion, len(sec.versions))
	for i, v := range sec.versions {
		out[i] = v.clone()
	}
	return out
}

// Update applies opts to an existing version ("" means the current one) and
// bumps its updated time, like UpdateSecretProperties.
func (s *Server) Update(vault, name, version string, opts ...SetOption) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ver := s.findLocked(s.vaultLocked(vault), name, version)
	if ver == nil {
		return notFound(vault, name, version)
	}
	id := ver.Version
	for _, o := range opts {
		o(ver)
	}
	ver.Version = id
	ver.Updated = time.Now().Truncate(time.Second)
	return nil
}

// Disable disables a version ("" means the current one).
func (s *Server) Disable(vault, name, version string) error {
	return s.Update(vault, name, version, Enabled(false))
}

// DeleteVersion removes one version, which Key Vault itself cannot do; it
// stands for a version that is gone. Removing the current version makes the
// previous one current; removing the last version removes the secret.
func (s *Server) DeleteVersion(vault, name, version string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vaultLocked(vault)
	key := strings.ToLower(name)
	sec := v.secrets[key]
	if sec != nil {
		i := slices.IndexFunc(sec.versions, func(x *SecretVersion) bool { return x.Version == strings.ToLower(version) })
		if i >= 0 {
			sec.versions = slices.Delete(sec.versions, i, i+1)
			if len(sec.versions) == 0 {
				delete(v.secrets, key)
			}
			return nil
		}
	}
	return notFound(vault, name, version)
}

// Delete removes a secret and all its versions (and purges it: there is no
// soft-delete here).
func (s *Server) Delete(vault, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.vaultLocked(vault)
	key := strings.ToLower(name)
	if v.secrets[key] == nil {
		return notFound(vault, name, "")
	}
	delete(v.secrets, key)
	return nil
}

// findLocked returns a version, the current one when version is "".
func (s *Server) findLocked(v *vault, name, version string) *SecretVersion {
	sec := v.secrets[strings.ToLower(name)]
	if sec == nil {
		return nil
	}
	if version == "" {
		return sec.versions[len(sec.versions)-1]
	}
	for _, ver := range sec.versions {
		if ver.Version == strings.ToLower(version) {
			return ver
		}
	}
	return nil
}

func notFound(vault, name, version string) error {
	if version != "" {
		return fmt.Errorf("vaulttest: secret %s/%s not found in vault %q", name, version, vault)
	}
	return fmt.Errorf("vaulttest: secret %s not found in vault %q", name, vault)
}

func newVersion() string {
	return hex.EncodeToString(randomBytes(16))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails
	return b
}
