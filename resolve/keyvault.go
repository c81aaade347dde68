package resolve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// KeyVaultOptions configure a KeyVault provider.
type KeyVaultOptions struct {
	// Client holds the azsecrets options (transport, cloud); its retry
	// settings are replaced, since KeyVault retries on its own schedule.
	Client azsecrets.ClientOptions
	// Concurrency bounds the requests in flight across all vaults; 64 when zero.
	Concurrency int
	// Backoff is the retry schedule; DefaultBackoff when zero.
	Backoff Backoff
	// Log receives debug records: names, versions, vaults, timings; never values.
	Log *slog.Logger
}

// KeyVault is the Azure Key Vault provider. One credential serves every
// vault; each vault has one client, and so one challenge and one token.
type KeyVault struct {
	cred *watchedCredential
	opts KeyVaultOptions
	log  *slog.Logger

	mu     sync.Mutex
	vaults map[string]*vaultClient
}

type vaultClient struct {
	*azsecrets.Client
	// authorized is closed when the first request carrying a token leaves:
	// the challenge has been answered, and the rest may fan out.
	authorized chan struct{}
	once       sync.Once
}

// NewKeyVault returns a provider that reads secrets with cred.
func NewKeyVault(cred azcore.TokenCredential, opts KeyVaultOptions) *KeyVault {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	if opts.Backoff == (Backoff{}) {
		opts.Backoff = DefaultBackoff
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &KeyVault{cred: &watchedCredential{TokenCredential: cred}, opts: opts, log: log, vaults: map[string]*vaultClient{}}
}

// Client returns the client of one vault, made on first use.
func (k *KeyVault) Client(vaultURL string) (*azsecrets.Client, error) {
	v, err := k.vault(vaultURL)
	if err != nil {
		return nil, err
	}
	return v.Client, nil
}

func (k *KeyVault) vault(vaultURL string) (*vaultClient, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if v, ok := k.vaults[vaultURL]; ok {
		return v, nil
	}
	v := &vaultClient{authorized: make(chan struct{})}
	opts := k.opts.Client
	opts.Retry = policy.RetryOptions{MaxRetries: -1}
	opts.PerRetryPolicies = append(append([]policy.Policy(nil), opts.PerRetryPolicies...), authorizedPolicy{v})
	c, err := azsecrets.NewClient(vaultURL, k.cred, &opts)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", vaultURL, err)
	}
	v.Client = c
	k.vaults[vaultURL] = v
	return v, nil
}

// authorizedPolicy runs after the challenge policy and notices the first
// request that carries a token.
type authorizedPolicy struct{ v *vaultClient }

func (p authorizedPolicy) Do(req *policy.Request) (*http.Response, error) {
	if req.Raw().Header.Get("Authorization") != "" {
		p.v.once.Do(func() { close(p.v.authorized) })
	}
	return req.Next()
}

// Fetch gets every id, each once. Per vault, one request goes first and
// draws the authentication challenge; the others wait until it is answered
// and a token is in hand, then fan out, so a vault sees N+1 requests for N
// secrets instead of 2N. At most Concurrency requests are in flight. When the
// first request fails because no token can be had, the vault's other secrets
// fail with the same cause without being asked for.
func (k *KeyVault) Fetch(ctx context.Context, ids []SecretID) []Result {
	results := make([]Result, len(ids))
	sem := make(chan struct{}, k.opts.Concurrency)
	byVault := map[string][]int{}
	var order []string
	for i, id := range ids {
		if _, ok := byVault[id.Vault]; !ok {
			order = append(order, id.Vault)
		}
		byVault[id.Vault] = append(byVault[id.Vault], i)
	}
	var wg sync.WaitGroup
	for _, vaultURL := range order {
		idx := byVault[vaultURL]
		wg.Go(func() {
			v, err := k.vault(vaultURL)
			if err != nil {
				for _, i := range idx {
					results[i] = Result{Err: &Failure{Kind: KindUsage, Cause: "cannot use this vault URL", Detail: err.Error()}}
				}
				return
			}
			firstDone := make(chan struct{})
			go func() {
				defer close(firstDone)
				results[idx[0]] = k.get(ctx, sem, v, ids[idx[0]])
			}()
			firstEnded := false
			select {
			case <-v.authorized:
			case <-firstDone:
				firstEnded = true
			case <-ctx.Done():
				// The first request ends with ctx, and when it was still
				// waiting for a token, that is the cause for every secret.
				<-firstDone
				firstEnded = true
			}
			if firstEnded {
				if f := results[idx[0]].Err; f != nil && f.identity {
					for _, i := range idx[1:] {
						results[i] = Result{Err: f}
					}
					return
				}
			}
			var rest sync.WaitGroup
			for _, i := range idx[1:] {
				rest.Go(func() { results[i] = k.get(ctx, sem, v, ids[i]) })
			}
			rest.Wait()
			<-firstDone
		})
	}
	wg.Wait()
	return results
}

// get fetches one secret, retrying throttling and transient faults until
// ctx ends. A slot of sem is held only while a request is in flight.
func (k *KeyVault) get(ctx context.Context, sem chan struct{}, v *vaultClient, id SecretID) Result {
	var s Secret
	f := k.retry(ctx, sem, "get "+id.String()+" from "+id.Vault, accessRead, func(ctx context.Context) error {
		start := time.Now()
		resp, err := v.GetSecret(ctx, id.Name, id.Version, nil)
		if err != nil {
			return err
		}
		var ok bool
		if s, ok = fromBundle(resp.Secret); !ok {
			return errMalformed
		}
		k.log.Debug("fetched", "vault", id.Vault, "secret", s.Name, "version", s.Version, "took", time.Since(start).Round(time.Millisecond))
		return nil
	})
	if f != nil {
		return Result{Err: f}
	}
	return Result{Secret: s}
}

// access is what an operation asks of the vault, so that a refusal names
// the permission that is missing.
type access int

const (
	accessRead access = iota
	accessList
	accessWrite
)

// retry runs op until it succeeds, fails for good, or ctx ends. When sem is
// not nil, a slot is held while op runs, and released while waiting.
func (k *KeyVault) retry(ctx context.Context, sem chan struct{}, what string, acc access, op func(context.Context) error) *Failure {
	var (
		delay time.Duration
		last  *Failure
	)
	for attempt := 1; ; attempt++ {
		if sem != nil {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return gaveUp(ctx, last, attempt-1)
			}
		}
		err := op(ctx)
		if sem != nil {
			<-sem
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			// Time ran out while the identity service was still being asked
			// for a token (its own retries included): say so, rather than
			// blame the vault.
			if f := k.cred.timedOut(ctx); last == nil && f != nil {
				return f
			}
			return gaveUp(ctx, last, attempt)
		}
		f, again, wait := classify(err, time.Now(), acc)
		if !again {
			k.log.Debug("failed", "op", what, "cause", f.Cause, "detail", f.Detail)
			return f
		}
		last = f
		delay = k.opts.Backoff.after(delay, wait, isThrottled(err))
		if dl, ok := ctx.Deadline(); ok {
			delay = k.opts.Backoff.within(delay, time.Until(dl))
		}
		k.log.Debug("retrying", "op", what, "cause", f.Cause, "attempt", attempt, "wait", delay.Round(time.Millisecond))
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return gaveUp(ctx, last, attempt)
		}
	}
}

// watchedCredential remembers the credential's last failure. When time runs
// out during a token request, azcore's retry policy returns the context's
// error in place of the credential's, which says which identity was slow.
type watchedCredential struct {
	azcore.TokenCredential
	mu  sync.Mutex
	err error
}

func (c *watchedCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.TokenCredential.GetToken(ctx, opts)
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	return tok, err
}

// timedOut is the failure to report when ctx ran out while the credential
// was still getting a token, or nil.
func (c *watchedCredential) timedOut(ctx context.Context) *Failure {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	var idf identityFailure
	if err == nil || !errors.Is(context.Cause(ctx), context.DeadlineExceeded) || !errors.As(err, &idf) {
		return nil
	}
	return &Failure{Kind: KindUnavailable, Cause: idf.Error(), Hint: idf.Hint(), identity: true}
}

var errMalformed = errors.New("the vault's answer had no value or id")

// gaveUp is the failure when ctx ended: the timeout, or an interruption.
func gaveUp(ctx context.Context, last *Failure, attempts int) *Failure {
	cause := "the timeout ran out"
	if errors.Is(context.Cause(ctx), context.Canceled) {
		cause = "interrupted"
	}
	hint := "raise --timeout, or retry later"
	if last != nil {
		plural := "s"
		if attempts == 1 {
			plural = ""
		}
		cause += fmt.Sprintf(" after %d attempt%s; last: %s", attempts, plural, last.Cause)
		if last.Hint != "" {
			hint = last.Hint
		}
	} else {
		cause += " while waiting for the vault"
	}
	return &Failure{Kind: KindUnavailable, Cause: cause, Hint: hint, identity: last != nil && last.identity}
}

func fromBundle(b azsecrets.Secret) (Secret, bool) {
	if b.Value == nil || b.ID == nil {
		return Secret{}, false
	}
	s := withAttributes(b.ID, b.Attributes, b.ContentType, b.Tags)
	s.Value = *b.Value
	return s, true
}

// withAttributes is a Secret with the metadata Key Vault sends alike for
// a secret (a bundle) and for a listing's item (its properties).
func withAttributes(id *azsecrets.ID, a *azsecrets.SecretAttributes, contentType *string, tags map[string]*string) Secret {
	s := Secret{Name: id.Name(), Version: id.Version(), Enabled: true}
	if contentType != nil {
		s.ContentType = *contentType
	}
	if a != nil {
		if a.Enabled != nil {
			s.Enabled = *a.Enabled
		}
		s.Created = deref(a.Created)
		s.Updated = deref(a.Updated)
		s.NotBefore = deref(a.NotBefore)
		s.Expires = deref(a.Expires)
	}
	if len(tags) > 0 {
		s.Tags = make(map[string]string, len(tags))
		for k, v := range tags {
			if v != nil {
				s.Tags[k] = *v
			}
		}
	}
	return s
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// identityFailure is how a credential that classifies its own errors (the
// ones package runctx builds) reports them.
type identityFailure interface {
	error
	Hint() string
	Unavailable() bool
}

// classify turns an error from the Key Vault pipeline into a Failure, and
// says whether trying again may help and how long the service asked to wait.
func classify(err error, now time.Time, acc access) (f *Failure, retry bool, wait time.Duration) {
	detail := err.Error()
	var (
		re       *azcore.ResponseError
		idf      identityFailure
		authFail *azidentity.AuthenticationFailedError
		certErr  *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		dnsErr   *net.DNSError
		urlErr   *url.Error
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &Failure{Kind: KindUnavailable, Cause: "the timeout ran out", Hint: "raise --timeout, or retry later"}, false, 0
	case errors.As(err, &re):
		return classifyResponse(re, now, acc)
	case errors.As(err, &idf):
		k := KindDenied
		if idf.Unavailable() {
			k = KindUnavailable
		}
		return &Failure{Kind: k, Cause: idf.Error(), Hint: idf.Hint(), identity: true}, idf.Unavailable(), 0
	case errors.As(err, &authFail):
		if r := authFail.RawResponse; r == nil || r.StatusCode >= 500 || r.StatusCode == http.StatusTooManyRequests {
			return &Failure{Kind: KindUnavailable, Cause: "the identity service did not answer", Hint: "retry later", Detail: detail, identity: true}, true, 0
		}
		return &Failure{Kind: KindDenied, Cause: "the identity could not get a token", Hint: "check the identity's credentials", Detail: detail, identity: true}, false, 0
	case isNonRetriable(err):
		return &Failure{Kind: KindDenied, Cause: "no identity could get a token", Hint: "sign in with `az login`, or set the AZURE_* variables of a service principal", Detail: detail, identity: true}, false, 0
	case errors.As(err, &certErr), errors.As(err, &unknown):
		return &Failure{Kind: KindUnavailable, Cause: "the vault's TLS certificate is not trusted",
			Hint: "if a proxy inspects TLS, point SSL_CERT_FILE at its CA certificate", Detail: detail}, false, 0
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return &Failure{Kind: KindUnavailable, Cause: fmt.Sprintf("no such host %s", dnsErr.Name),
			Hint: "check the vault name", Detail: detail}, false, 0
	case strings.Contains(detail, "challenge resource"):
		return &Failure{Kind: KindDenied, Cause: "the vault's authentication challenge names another resource than the vault, so no token was sent",
			Hint: "check that the vault URL is a real Key Vault", Detail: detail}, false, 0
	case errors.Is(err, errMalformed), strings.HasPrefix(detail, "unmarshalling type"):
		return &Failure{Kind: KindUnavailable, Cause: "the vault's answer was malformed", Hint: "retry later", Detail: detail}, true, 0
	case errors.As(err, &urlErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED):
		return &Failure{Kind: KindUnavailable, Cause: "the connection failed: " + transportCause(err), Hint: "check the network and proxy settings", Detail: detail}, true, 0
	}
	return &Failure{Kind: KindUnavailable, Cause: firstLine(detail), Hint: "run with --log-level debug for details"}, false, 0
}

func isNonRetriable(err error) bool {
	var nr interface{ NonRetriable() }
	return errors.As(err, &nr)
}

func transportCause(err error) string {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return firstLine(urlErr.Err.Error())
	}
	return firstLine(err.Error())
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// classifyResponse translates an HTTP error answer of the vault.
func classifyResponse(re *azcore.ResponseError, now time.Time, acc access) (*Failure, bool, time.Duration) {
	msg := serviceMessage(re.RawResponse)
	detail := fmt.Sprintf("HTTP %d %s: %s", re.StatusCode, re.ErrorCode, msg)
	f := &Failure{Kind: KindUnavailable, Detail: detail}
	switch re.StatusCode {
	case http.StatusUnauthorized:
		f.Kind, f.Cause = KindDenied, "the vault refused the token (401)"
		f.Hint = "the identity's tenant must be the vault's tenant: check AZURE_TENANT_ID"
	case http.StatusForbidden:
		switch {
		case strings.Contains(strings.ToLower(msg), "disabled"):
			f.Kind, f.Cause = KindMissing, "the secret is disabled"
			f.Hint = "enable it in the vault, or map an enabled version"
		case strings.Contains(re.ErrorCode, "Firewall") || strings.Contains(msg, "Client address is not authorized"):
			f.Kind, f.Cause = KindDenied, "the vault's firewall refused this network"
			f.Hint = "allow this network or a private endpoint in the vault's networking settings"
		default:
			f.Kind = KindDenied
			switch acc {
			case accessWrite:
				f.Cause = "access denied: the identity may not write secrets in this vault"
				f.Hint = "grant the identity the Key Vault Secrets Officer role on the vault (or a 'set' secret access policy)"
			case accessList:
				f.Cause = "access denied: the identity may not list secrets in this vault"
				f.Hint = "grant the identity the Key Vault Secrets User role on the vault (or a 'list' secret access policy)"
			default:
				f.Cause = "access denied: the identity may not read secrets in this vault"
				f.Hint = "grant the identity the Key Vault Secrets User role on the vault (or a 'get' secret access policy)"
			}
		}
	case http.StatusNotFound:
		f.Kind, f.Cause = KindMissing, "not found in the vault"
		f.Hint = "check the name with `runsecrets list`, or create it with `runsecrets set NAME`"
	case http.StatusBadRequest:
		f.Kind, f.Cause = KindUsage, "the vault rejected the request: "+firstLine(msg)
		f.Hint = "check the secret name and version"
		if acc == accessWrite {
			f.Hint = "check the secret name, content type, tags and dates"
		}
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		f.Cause = fmt.Sprintf("the vault answered %d %s", re.StatusCode, http.StatusText(re.StatusCode))
		if re.StatusCode == http.StatusTooManyRequests {
			f.Cause = "the vault is throttling requests (429)"
			f.Hint = "lower --concurrency, stagger the fleet's start, or raise --timeout"
		} else {
			f.Hint = "retry later; see the Azure status page"
		}
		var wait time.Duration
		if re.RawResponse != nil {
			wait = retryAfter(re.RawResponse.Header, now)
		}
		return f, true, wait
	default:
		f.Cause = fmt.Sprintf("the vault answered %d %s", re.StatusCode, http.StatusText(re.StatusCode))
		f.Hint = "run with --log-level debug for the vault's answer"
	}
	return f, false, 0
}

// serviceMessage reads error.message from an Azure error body.
func serviceMessage(resp *http.Response) string {
	if resp == nil {
		return ""
	}
	body, err := runtime.Payload(resp)
	if err != nil {
		return ""
	}
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Message
}
