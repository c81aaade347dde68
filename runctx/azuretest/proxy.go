package azuretest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// A cloud groups the host names and token audiences of one Azure cloud.
type cloud struct {
	login, arm, armAudience, vaultSuffix string
}

var clouds = []cloud{
	{"login.microsoftonline.com", "management.azure.com", "https://management.core.windows.net", ".vault.azure.net"},
	{"login.chinacloudapi.cn", "management.chinacloudapi.cn", "https://management.core.chinacloudapi.cn", ".vault.azure.cn"},
	{"login.microsoftonline.us", "management.usgovcloudapi.net", "https://management.core.usgovcloudapi.net", ".vault.usgovcloudapi.net"},
}

// service names the fake serving host (lower case, no port), or "" when
// none does.
func service(host string) (string, cloud) {
	for _, c := range clouds {
		label, isVault := strings.CutSuffix(host, c.vaultSuffix)
		switch {
		case host == c.login:
			return "sts", c
		case host == c.arm:
			return "arm", c
		case isVault && label != "" && !strings.Contains(label, "."):
			return "vault", c
		}
	}
	return "", cloud{}
}

// authority is the test CA, which signs a leaf certificate per host name.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte

	mu     sync.Mutex
	leaves map[string]*tls.Certificate
}

func newAuthority() (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("azuretest: CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "azuretest fake Azure CA", Organization: []string{"runsecrets tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("azuretest: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("azuretest: CA certificate: %w", err)
	}
	return &authority{
		cert:   cert,
		key:    key,
		pem:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		leaves: map[string]*tls.Certificate{},
	}, nil
}

// leaf returns the certificate for name, minting it on first use.
func (ca *authority) leaf(name string) (*tls.Certificate, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if c := ca.leaves[name]; c != nil {
		return c, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	c := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	ca.leaves[name] = c
	return c, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// certificate serves tls.Config.GetCertificate for the faked hosts only.
func (a *Azure) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.ToLower(hello.ServerName)
	if s, _ := service(name); s == "" {
		return nil, fmt.Errorf("azuretest: no fake for TLS server name %q", hello.ServerName)
	}
	return a.ca.leaf(name)
}

// serveProxy answers the proxy's own requests: CONNECT to a faked host:443
// becomes a TLS connection served by serveTLS; everything else is refused.
func (a *Azure) serveProxy(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodConnect {
		http.Error(w, "azuretest: only CONNECT is supported", http.StatusMethodNotAllowed)
		a.record("proxy", r, start, http.StatusMethodNotAllowed)
		return
	}
	host, port, err := net.SplitHostPort(r.Host)
	if s, _ := service(strings.ToLower(host)); err != nil || port != "443" || s == "" {
		http.Error(w, "azuretest: no fake for "+r.Host, http.StatusBadGateway)
		a.record("proxy", r, start, http.StatusBadGateway)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "azuretest: cannot hijack: "+err.Error(), http.StatusInternalServerError)
		return
	}
	conn.SetDeadline(time.Time{})
	if _, err := conn.Write([]byte("HTTP/1.1 200 Connection Established\r\n\r\n")); err != nil {
		conn.Close()
		return
	}
	var c net.Conn = conn
	if brw.Reader.Buffered() > 0 {
		c = &bufferedConn{Conn: conn, r: brw.Reader}
	}
	a.conns.push(tls.Server(c, a.tlsConfig))
}

// serveTLS routes a request that arrived through the proxy by its host.
func (a *Azure) serveTLS(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name, c := service(hostOnly(r.Host))
	rec := &statusRecorder{ResponseWriter: w}
	defer func() { a.record(name, r, start, rec.status) }()
	switch name {
	case "sts":
		a.serveSTS(rec, r)
	case "arm":
		a.serveARM(rec, r, c)
	case "vault":
		a.Vaults.ServeHTTP(rec, r)
	default:
		name = "proxy"
		http.Error(rec, "azuretest: no fake for "+r.Host, http.StatusMisdirectedRequest)
	}
}

// statusRecorder notes the status a handler wrote; Unwrap keeps Hijack
// reachable through http.ResponseController.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// bufferedConn replays bytes the proxy's server read past the CONNECT request.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// NetConn returns the underlying connection, so faults can reset it.
func (c *bufferedConn) NetConn() net.Conn { return c.Conn }

// connQueue is a net.Listener fed with the proxy's tunnelled connections.
type connQueue struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) push(c net.Conn) {
	select {
	case q.ch <- c:
	case <-q.done:
		c.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
