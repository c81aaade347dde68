// Package azuretest is a whole fake Azure for end-to-end tests of a program
// that has no test switches.
//
// The program reaches the fake the standard way: HTTPS_PROXY points at an
// HTTP CONNECT proxy on 127.0.0.1 and SSL_CERT_FILE at a test CA (see Env).
// The proxy accepts CONNECT only for the hosts it fakes, terminates TLS with a
// certificate it mints for the requested name, and serves HTTP/1.1:
//
//   - login.microsoftonline.com, login.chinacloudapi.cn, login.microsoftonline.us:
//     an Entra ID STS with instance discovery, OpenID configuration and the
//     client-credentials token endpoint (AddClient);
//   - management.azure.com, management.chinacloudapi.cn, management.usgovcloudapi.net:
//     ARM, serving Azure ML workspaces and their Key Vault (AddWorkspace);
//   - *.vault.azure.net, *.vault.azure.cn, *.vault.usgovcloudapi.net: Key
//     Vault, served by the embedded vaulttest.Server Vaults.
//
// A CONNECT to any other host is refused with 502 and logged; a plain proxy
// request gets 405. Besides, an Azure ML managed-identity endpoint listens on
// plain http on 127.0.0.1 (MSIEndpoint, MSISecret), which the proxy never sees
// because Go never proxies loopback.
//
// Tokens are opaque random strings remembered with their tenant, client and
// audience: the vaults and ARM accept only tokens issued here, by the STS or
// the managed-identity endpoint, for their own audience and the Azure's
// tenant. The real host names are used, so clients keep Key Vault's challenge
// resource verification on. An Azure is safe for concurrent use and handles
// hundreds of concurrent connections.
package azuretest

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runsecrets/runsecrets/resolve/vaulttest"
)

// DefaultTenant is the tenant of an Azure made without WithTenant.
const DefaultTenant = vaulttest.DefaultTenant

// Option configures an Azure made by Start or New.
type Option func(*Azure)

// WithTenant sets the Azure's tenant: the tenant vault challenges name, the
// tenant of managed identities and the first tenant the STS knows.
func WithTenant(id string) Option {
	return func(a *Azure) { a.tenant = id }
}

// Azure is a running fake Azure. Make one with Start or New.
type Azure struct {
	// Vaults serves every Key Vault host. Arrange secrets and faults on it;
	// vault names are the first label of the host name.
	Vaults *vaulttest.Server

	tenant    string
	ca        *authority
	tlsConfig *tls.Config
	proxyURL  string
	msiURL    string
	msiSecret string

	proxy, inner, msi *http.Server
	conns             *connQueue

	mu            sync.Mutex
	tenants       map[string]string // lower-case id → id as given
	clients       map[string]string // tenant/client, lower-case → secret
	identities    map[string]bool   // lower-case client id
	tokens        map[string]Token  // by token value
	issued        []Token           // in order of issue
	workspaces    map[string]*workspace
	tokenFail     failures
	msiFail       failures
	armFail       failures
	tokenLatency  time.Duration
	msiLatency    time.Duration
	tokenRequests int
	log           []Request
}

// Start starts a fake Azure on 127.0.0.1. Close it when done.
func Start(opts ...Option) (*Azure, error) {
	a := &Azure{
		tenant:     DefaultTenant,
		msiSecret:  randomString(24),
		tenants:    map[string]string{},
		clients:    map[string]string{},
		identities: map[string]bool{},
		tokens:     map[string]Token{},
		workspaces: map[string]*workspace{},
		conns:      newConnQueue(),
	}
	for _, o := range opts {
		o(a)
	}
	a.tenants[strings.ToLower(a.tenant)] = a.tenant
	a.Vaults = vaulttest.New(vaulttest.WithTenant(a.tenant), vaulttest.WithTokenCheck(a.vaultTokenOK))

	ca, err := newAuthority()
	if err != nil {
		return nil, err
	}
	a.ca = ca
	a.tlsConfig = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"},
		GetCertificate: a.certificate,
	}

	proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("azuretest: listen: %w", err)
	}
	msiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		proxyLn.Close()
		return nil, fmt.Errorf("azuretest: listen: %w", err)
	}
	a.proxyURL = "http://" + proxyLn.Addr().String()
	a.msiURL = "http://" + msiLn.Addr().String() + "/MSI/auth"

	errLog := log.New(quietLog{}, "azuretest: ", 0)
	a.proxy = &http.Server{Handler: http.HandlerFunc(a.serveProxy), ErrorLog: errLog, ReadHeaderTimeout: 30 * time.Second}
	a.inner = &http.Server{Handler: http.HandlerFunc(a.serveTLS), ErrorLog: errLog, ReadHeaderTimeout: 30 * time.Second}
	a.msi = &http.Server{Handler: http.HandlerFunc(a.serveMSI), ErrorLog: errLog, ReadHeaderTimeout: 30 * time.Second}
	go a.proxy.Serve(proxyLn)
	go a.inner.Serve(a.conns)
	go a.msi.Serve(msiLn)
	return a, nil
}

// New starts a fake Azure for a test and closes it when the test ends. It
// fails the test if the Azure cannot start.
func New(tb testing.TB, opts ...Option) *Azure {
	tb.Helper()
	a, err := Start(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(a.Close)
	return a
}

// Close stops the proxy and the managed-identity endpoint and drops every
// connection.
func (a *Azure) Close() {
	a.proxy.Close()
	a.conns.Close()
	a.inner.Close()
	a.msi.Close()
}

// TenantID returns the Azure's tenant.
func (a *Azure) TenantID() string { return a.tenant }

// ProxyURL returns the proxy's URL, http://127.0.0.1:port.
func (a *Azure) ProxyURL() string { return a.proxyURL }

// CAPEM returns the test CA's certificate, PEM-encoded.
func (a *Azure) CAPEM() []byte { return a.ca.pem }

// CertPool returns a pool holding only the test CA.
func (a *Azure) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(a.ca.cert)
	return p
}

// WriteCA writes the test CA's certificate as PEM to path, for SSL_CERT_FILE.
func (a *Azure) WriteCA(path string) error {
	if err := os.WriteFile(path, a.ca.pem, 0o644); err != nil {
		return fmt.Errorf("azuretest: write CA: %w", err)
	}
	return nil
}

// Env returns the environment entries that send a Go program's Azure traffic
// through the fake: HTTPS_PROXY and https_proxy set to the proxy,
// SSL_CERT_FILE set to caPath (write it with WriteCA), and NO_PROXY and
// no_proxy emptied so no inherited exclusion bypasses the proxy. Append them
// after the inherited environment so they win.
func (a *Azure) Env(caPath string) []string {
	return []string{
		"HTTPS_PROXY=" + a.proxyURL,
		"https_proxy=" + a.proxyURL,
		"SSL_CERT_FILE=" + caPath,
		"NO_PROXY=",
		"no_proxy=",
	}
}

// Client returns an HTTP client, with a transport of its own, that goes
// through the proxy (loopback excepted, as with HTTPS_PROXY) and trusts only
// the test CA. Pass it as azcore.ClientOptions.Transport to run the real SDK
// against the fake in-process.
func (a *Azure) Client() *http.Client {
	proxy, _ := url.Parse(a.proxyURL)
	return &http.Client{Transport: &http.Transport{
		Proxy: func(r *http.Request) (*url.URL, error) {
			if ip := net.ParseIP(r.URL.Hostname()); (ip != nil && ip.IsLoopback()) || r.URL.Hostname() == "localhost" {
				return nil, nil
			}
			return proxy, nil
		},
		TLSClientConfig: &tls.Config{RootCAs: a.CertPool()},
	}}
}

// Request is one entry of the request log.
type Request struct {
	Time    time.Time
	Service string // "sts", "arm", "vault", "msi", or "proxy" for refused requests
	Method  string
	Host    string // as the client sent it
	Path    string
	Status  int // 0 when the connection was dropped unanswered
}

// Requests returns a copy of the request log across every service, in order
// of completion.
func (a *Azure) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.log)
}

// CountHost returns how many logged requests went to a host ending with
// suffix, port ignored, such as ".vault.azure.net" or "management.azure.com".
func (a *Azure) CountHost(suffix string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, r := range a.log {
		if strings.HasSuffix(hostOnly(r.Host), strings.ToLower(suffix)) {
			n++
		}
	}
	return n
}

// TokenRequests returns how many token requests the STS token endpoint and
// the managed-identity endpoint received, failed ones included.
func (a *Azure) TokenRequests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tokenRequests
}

// Reset clears the request log and the counters, the Vaults' included.
// Registrations, secrets, tokens and faults stay.
func (a *Azure) Reset() {
	a.mu.Lock()
	a.log = nil
	a.tokenRequests = 0
	a.mu.Unlock()
	a.Vaults.Reset()
}

func (a *Azure) record(service string, r *http.Request, start time.Time, status int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.log = append(a.log, Request{Time: start, Service: service, Method: r.Method, Host: r.Host, Path: r.URL.Path, Status: status})
}

// failures is a "fail the next n requests with status" knob; n < 0 fails all.
type failures struct{ n, status int }

func (f *failures) take() (int, bool) {
	if f.n == 0 {
		return 0, false
	}
	if f.n > 0 {
		f.n--
	}
	return f.status, true
}

// sleep waits d or until the request is cancelled.
func sleep(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}

// quietLog passes the servers' error log to stderr, except the handshake
// errors clients cause by hanging up early, as a process exiting with dials
// in flight does; those would drown a benchmark's output. Errors that tell of
// a setup problem, such as a client that does not trust the CA, still show.
type quietLog struct{}

func (quietLog) Write(p []byte) (int, error) {
	line := string(p)
	if strings.Contains(line, "TLS handshake error") && (strings.HasSuffix(line, ": EOF\n") ||
		strings.Contains(line, "use of closed network connection") || strings.Contains(line, "connection reset by peer")) {
		return len(p), nil
	}
	return os.Stderr.Write(p)
}

// hostOnly lower-cases host and drops any port.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(host)
}
