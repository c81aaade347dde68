package azuretest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// tokenLifetime is how long issued tokens are valid. Under two hours, so
// MSAL sets no early refresh time.
const tokenLifetime = time.Hour

// Token is an access token the fake issued.
type Token struct {
	Value    string
	Tenant   string
	ClientID string // "" for the system-assigned managed identity
	Audience string // the resource, lower case, no "/.default" or trailing slash
	Issuer   string // "sts" or "msi"
	Expires  time.Time
}

// IssuedTokens returns every token issued so far, oldest first, so a test can
// check that none of them shows up in a program's output.
func (a *Azure) IssuedTokens() []Token {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.issued)
}

// AddClient registers an app (service principal) in tenant that may get
// tokens with the client-credentials grant and secret. The tenant becomes
// known to the STS.
func (a *Azure) AddClient(tenant, clientID, secret string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tenants[strings.ToLower(tenant)] = tenant
	a.clients[strings.ToLower(tenant+"/"+clientID)] = secret
}

// FailTokenRequests makes the next n requests to the STS token endpoint fail
// with status (a 5xx); n < 0 fails all of them, n == 0 stops failing.
func (a *Azure) FailTokenRequests(n, status int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tokenFail = failures{n, status}
}

// SetTokenLatency delays every answer of the STS token endpoint by d.
func (a *Azure) SetTokenLatency(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tokenLatency = d
}

// audience normalises a scope or resource: "https://vault.azure.net/.default"
// and "https://vault.azure.net/" both become "https://vault.azure.net".
func audience(scope string) string {
	s := strings.TrimSuffix(strings.ToLower(scope), "/.default")
	return strings.TrimRight(s, "/")
}

// issueLocked mints and remembers a token. a.mu must be held.
func (a *Azure) issueLocked(tenant, clientID, aud, issuer string) Token {
	t := Token{
		Value:    "fakeAT." + randomString(32),
		Tenant:   tenant,
		ClientID: clientID,
		Audience: audience(aud),
		Issuer:   issuer,
		Expires:  time.Now().Add(tokenLifetime).Truncate(time.Second),
	}
	a.tokens[t.Value] = t
	a.issued = append(a.issued, t)
	return t
}

// lookup returns the live token the request's Authorization header carries.
func (a *Azure) lookup(token string) (Token, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.tokens[token]
	return t, ok && time.Now().Before(t.Expires)
}

// vaultTokenOK is the vaults' token check: the token was issued here for the
// vault's audience in the tenant its challenge names.
func (a *Azure) vaultTokenOK(token, resource, tenant string) bool {
	t, ok := a.lookup(token)
	return ok && strings.EqualFold(t.Tenant, tenant) && t.Audience == audience(resource)
}

// serveSTS fakes the Entra ID endpoints MSAL uses for a client-secret login.
func (a *Azure) serveSTS(w http.ResponseWriter, r *http.Request) {
	host := hostOnly(r.Host)
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/common/discovery/instance":
		a.instanceDiscovery(w, r, host)
	case r.Method == http.MethodGet && len(segs) == 4 && segs[1] == "v2.0" && segs[2] == ".well-known" && segs[3] == "openid-configuration":
		a.openIDConfiguration(w, host, segs[0])
	case len(segs) == 4 && segs[1] == "oauth2" && segs[2] == "v2.0" && segs[3] == "token":
		a.tokenEndpoint(w, r, segs[0])
	default:
		aadError(w, http.StatusNotFound, "invalid_request", 900561, "The endpoint "+r.URL.Path+" does not exist.")
	}
}

func (a *Azure) knownTenant(tenant string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.tenants[strings.ToLower(tenant)]
	return t, ok
}

func (a *Azure) instanceDiscovery(w http.ResponseWriter, r *http.Request, host string) {
	tenant := "common"
	if u, err := url.Parse(r.URL.Query().Get("authorization_endpoint")); err == nil {
		if t, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/"); t != "" {
			tenant = t
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": "https://" + host + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host,
			"preferred_cache":   host,
			"aliases":           []string{host},
		}},
	})
}

func (a *Azure) openIDConfiguration(w http.ResponseWriter, host, tenant string) {
	if _, ok := a.knownTenant(tenant); !ok {
		tenantNotFound(w, "invalid_tenant", tenant)
		return
	}
	base := "https://" + host + "/" + tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                base + "/v2.0",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"cloud_instance_name":                   strings.TrimPrefix(host, "login."),
	})
}

// tokenEndpoint serves the client-credentials grant with a client secret.
func (a *Azure) tokenEndpoint(w http.ResponseWriter, r *http.Request, tenantInPath string) {
	a.mu.Lock()
	a.tokenRequests++
	latency := a.tokenLatency
	status, failing := a.tokenFail.take()
	a.mu.Unlock()
	sleep(r, latency)

	switch {
	case failing:
		aadError(w, status, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again.")
		return
	case r.Method != http.MethodPost:
		aadError(w, http.StatusMethodNotAllowed, "invalid_request", 900561, "The endpoint only accepts POST requests. Received a "+r.Method+" request.")
		return
	}
	tenant, ok := a.knownTenant(tenantInPath)
	if !ok {
		tenantNotFound(w, "invalid_request", tenantInPath)
		return
	}
	if err := r.ParseForm(); err != nil {
		aadError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body could not be parsed.")
		return
	}
	clientID, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	a.mu.Lock()
	want, known := a.clients[strings.ToLower(tenant+"/"+clientID)]
	a.mu.Unlock()
	var scopes []string
	for s := range strings.FieldsSeq(r.PostForm.Get("scope")) {
		if s != "openid" && s != "offline_access" && s != "profile" {
			scopes = append(scopes, s)
		}
	}
	switch {
	case r.PostForm.Get("grant_type") != "client_credentials":
		aadError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", r.PostForm.Get("grant_type")))
	case clientID == "":
		aadError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
	case !known:
		aadError(w, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. "+
			"This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. "+
			"You may have sent your authentication request to the wrong tenant.", clientID, tenant))
	case secret == "":
		aadError(w, http.StatusUnauthorized, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
	case secret != want:
		aadError(w, http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf("Invalid client secret provided. "+
			"Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID))
	case len(scopes) != 1 || !strings.HasSuffix(scopes[0], "/.default"):
		aadError(w, http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf("The provided value for scope %s is not valid. "+
			"Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", strings.Join(scopes, " ")))
	default:
		a.mu.Lock()
		t := a.issueLocked(tenant, clientID, scopes[0], "sts")
		a.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{
			"token_type":     "Bearer",
			"expires_in":     int(tokenLifetime.Seconds()),
			"ext_expires_in": int(tokenLifetime.Seconds()),
			"access_token":   t.Value,
		})
	}
}

func tenantNotFound(w http.ResponseWriter, code, tenant string) {
	aadError(w, http.StatusBadRequest, code, 90002, fmt.Sprintf("Tenant '%s' not found. "+
		"Check to make sure you have the correct tenant ID and are signing into the correct cloud. "+
		"Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", tenant))
}

// aadError writes an Entra ID OAuth error body.
func aadError(w http.ResponseWriter, status int, code string, aadsts int, description string) {
	now := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	trace, corr := newGUID(), newGUID()
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts, description, trace, corr, now),
		"error_codes":       []int{aadsts},
		"timestamp":         now,
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", aadsts),
	})
}

// AddIdentity registers a user-assigned managed identity by client id with
// the managed-identity endpoint. MSAL caches managed-identity tokens for the
// life of a process, keyed by identity and resource, so tests that get such
// tokens in-process must use a fresh client id per Azure; separate processes,
// such as the program under test, are not affected.
func (a *Azure) AddIdentity(clientID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.identities[strings.ToLower(clientID)] = true
}

// MSIEndpoint returns the managed-identity endpoint's URL, for MSI_ENDPOINT.
func (a *Azure) MSIEndpoint() string { return a.msiURL }

// MSISecret returns the secret the managed-identity endpoint expects, for
// MSI_SECRET.
func (a *Azure) MSISecret() string { return a.msiSecret }

// MSIEnv returns MSI_ENDPOINT and MSI_SECRET entries that make MSAL pick its
// Azure ML managed-identity source. Add DEFAULT_IDENTITY_CLIENT_ID to use a
// user-assigned identity.
func (a *Azure) MSIEnv() []string {
	return []string{"MSI_ENDPOINT=" + a.msiURL, "MSI_SECRET=" + a.msiSecret}
}

// FailMSIRequests makes the next n managed-identity requests fail with status;
// n < 0 fails all of them, n == 0 stops failing.
func (a *Azure) FailMSIRequests(n, status int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.msiFail = failures{n, status}
}

// SetMSILatency delays every managed-identity answer by d.
func (a *Azure) SetMSILatency(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.msiLatency = d
}

// serveMSI is the Azure ML managed-identity endpoint (API 2017-09-01), as
// MSAL's AzureML source calls it: GET with the secret header and the
// api-version, resource and clientid parameters. An empty clientid asks for
// the compute's system-assigned identity.
func (a *Azure) serveMSI(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	defer func() { a.record("msi", r, start, rec.status) }()
	a.mu.Lock()
	a.tokenRequests++
	latency := a.msiLatency
	a.mu.Unlock()
	sleep(r, latency)

	q := r.URL.Query()
	clientID, resource := q.Get("clientid"), q.Get("resource")
	switch {
	case r.URL.Path != "/MSI/auth":
		msiError(rec, http.StatusNotFound, "not_found", "No endpoint at "+r.URL.Path+".")
		return
	case r.Method != http.MethodGet:
		msiError(rec, http.StatusMethodNotAllowed, "invalid_request", "Only GET is supported.")
		return
	case r.Header.Get("secret") == "":
		msiError(rec, http.StatusUnauthorized, "unauthorized_client", "The secret header is required.")
		return
	case r.Header.Get("secret") != a.msiSecret:
		msiError(rec, http.StatusForbidden, "unauthorized_client", "The secret header does not match.")
		return
	}
	a.mu.Lock()
	status, failing := a.msiFail.take()
	known := clientID == "" || a.identities[strings.ToLower(clientID)]
	a.mu.Unlock()
	switch {
	case failing:
		msiError(rec, status, "service_unavailable", "The managed identity endpoint is temporarily unavailable.")
	case q.Get("api-version") != "2017-09-01":
		msiError(rec, http.StatusBadRequest, "invalid_request", "api-version 2017-09-01 is required.")
	case resource == "":
		msiError(rec, http.StatusBadRequest, "invalid_request", "Required query variable 'resource' is missing.")
	case !known:
		msiError(rec, http.StatusBadRequest, "invalid_request", "Identity not found")
	default:
		a.mu.Lock()
		t := a.issueLocked(a.tenant, clientID, resource, "msi")
		a.mu.Unlock()
		writeJSON(rec, http.StatusOK, map[string]any{
			"access_token": t.Value,
			"expires_in":   int(time.Until(t.Expires).Seconds()),
			"expires_on":   t.Expires.Unix(),
			"resource":     resource,
			"token_type":   "Bearer",
			"client_id":    clientID,
		})
	}
}

func msiError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps and structs of plain values are marshalled
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(body)
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

func newGUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
