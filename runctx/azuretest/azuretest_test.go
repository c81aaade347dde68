package azuretest_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/google/go-cmp/cmp"

	"github.com/runsecrets/runsecrets/resolve/vaulttest"
	"github.com/runsecrets/runsecrets/runctx/azuretest"
)

var ctx = context.Background()

const (
	appID     = "11111111-aaaa-bbbb-cccc-000000000001"
	appSecret = "app-secret-value"
	vaultURL  = "https://myvault.vault.azure.net"
	vaultDflt = "https://vault.azure.net/.default"
	armDflt   = "https://management.core.windows.net//.default"
	wsPath    = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.MachineLearningServices/workspaces/ws-1"
)

func clientOptions(a *azuretest.Azure) azcore.ClientOptions {
	return azcore.ClientOptions{Transport: a.Client(), Retry: policy.RetryOptions{MaxRetries: -1}}
}

func secretCred(tb testing.TB, a *azuretest.Azure, tenant, secret string, c cloud.Configuration) *azidentity.ClientSecretCredential {
	tb.Helper()
	o := clientOptions(a)
	o.Cloud = c
	cred, err := azidentity.NewClientSecretCredential(tenant, appID, secret, &azidentity.ClientSecretCredentialOptions{ClientOptions: o})
	if err != nil {
		tb.Fatal(err)
	}
	return cred
}

func secretsClient(tb testing.TB, a *azuretest.Azure, url string, cred azcore.TokenCredential) *azsecrets.Client {
	tb.Helper()
	c, err := azsecrets.NewClient(url, cred, &azsecrets.ClientOptions{ClientOptions: clientOptions(a)})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// get sends a GET with an optional bearer token through the fake.
func get(tb testing.TB, a *azuretest.Azure, url, token string) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func token(tb testing.TB, cred azcore.TokenCredential, scope string) string {
	tb.Helper()
	tk, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		tb.Fatal(err)
	}
	return tk.Token
}

func TestClientSecretLoginAndVault(t *testing.T) {
	t.Parallel()
	a := azuretest.New(t)
	a.AddClient(a.TenantID(), appID, appSecret)
	for i := range 3 {
		a.Vaults.Set("myvault", fmt.Sprintf("s%d", i), fmt.Sprintf("value-%d", i))
	}
	c := secretsClient(t, a, vaultURL, secretCred(t, a, a.TenantID(), appSecret, cloud.AzurePublic))
	for i := range 3 {
		got, err := c.GetSecret(ctx, fmt.Sprintf("s%d", i), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if *got.Value != fmt.Sprintf("value-%d", i) || !strings.HasPrefix(string(*got.ID), vaultURL+"/secrets/s") {
			t.Errorf("got %s = %q", *got.ID, *got.Value)
		}
	}
	var login []string
	for _, r := range a.Requests() {
		if r.Service == "sts" {
			login = append(login, r.Method+" "+r.Path)
		}
	}
	want := []string{
		"GET /common/discovery/instance",
		"GET /" + a.TenantID() + "/v2.0/.well-known/openid-configuration",
		"POST /" + a.TenantID() + "/oauth2/v2.0/token",
	}
	if diff := cmp.Diff(want, login); diff != "" {
		t.Errorf("login round trips (-want +got):\n%s", diff)
	}
	if n, st := a.TokenRequests(), a.Vaults.Stats(); n != 1 || st.Challenges != 1 || st.Requests != 4 {
		t.Errorf("token requests %d, challenges %d, vault requests %d; want 1 1 4", n, st.Challenges, st.Requests)
	}
	if n := a.CountHost(".vault.azure.net"); n != 4 {
		t.Errorf("%d requests logged for vault hosts, want 4", n)
	}
	toks := a.IssuedTokens()
	if len(toks) != 1 || toks[0].Audience != "https://vault.azure.net" || toks[0].ClientID != appID || toks[0].Issuer != "sts" {
		t.Errorf("issued %+v", toks)
	}
}

func TestSovereignCloud(t *testing.T) {
	t.Parallel()
	a := azuretest.New(t, azuretest.WithTenant("cn-tenant"))
	a.AddClient("cn-tenant", appID, appSecret)
	a.Vaults.Set("kv", "s", "china")
	c := secretsClient(t, a, "https://kv.vault.azure.cn", secretCred(t, a, "cn-tenant", appSecret, cloud.AzureChina))
	got, err := c.GetSecret(ctx, "s", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Value != "china" || a.CountHost("login.chinacloudapi.cn") == 0 {
		t.Errorf("got %q, %d China logins", *got.Value, a.CountHost("login.chinacloudapi.cn"))
	}
	if toks := a.IssuedTokens(); toks[0].Audience != "https://vault.azure.cn" {
		t.Errorf("token audience %s", toks[0].Audience)
	}
}

func TestLoginFailures(t *testing.T) {
	t.Parallel()
	a := azuretest.New(t)
	a.AddClient(a.TenantID(), appID, appSecret)
	tests := []struct {
		name, tenant, secret, want string
		status                     int
	}{
		{"wrong secret", a.TenantID(), "nope", "AADSTS7000215", 401},
		{"unknown tenant", "00000000-0000-0000-0000-00000000dead", appSecret, "AADSTS90002", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred := secretCred(t, a, tt.tenant, tt.secret, cloud.AzurePublic)
			_, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultDflt}})
			var af *azidentity.AuthenticationFailedError
			if !errors.As(err, &af) || af.RawResponse.StatusCode != tt.status || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want a %d mentioning %s", err, tt.status, tt.want)
			}
		})
	}
	a.FailTokenRequests(1, 503)
	if _, err := secretCred(t, a, a.TenantID(), appSecret, cloud.AzurePublic).GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{vaultDflt}}); err == nil {
		t.Error("token request succeeded during an outage")
	}
}

func TestVaultAcceptsOnlyItsAudience(t *testing.T) {
	t.Parallel()
	a := azuretest.New(t)
	a.AddClient(a.TenantID(), appID, appSecret)
	a.Vaults.Set("myvault", "s", "v")
	cred := secretCred(t, a, a.TenantID(), appSecret, cloud.AzurePublic)
	url := vaultURL + "/secrets/s?api-version=2026-04-01"
	if status, _ := get(t, a, url, token(t, cred, armDflt)); status != 401 {
		t.Errorf("ARM token at the vault: %d, want 401", status)
	}
	if status, _ := get(t, a, url, "made-up"); status != 401 {
		t.Errorf("made-up token at the vault: %d, want 401", status)
	}
	if status, body := get(t, a, url, token(t, cred, vaultDflt)); status != 200 || !strings.Contains(body, `"value":"v"`) {
		t.Errorf("vault token at the vault: %d %s", status, body)
	}
}

func TestARM(t *testing.T) {
	t.Parallel()
	a := azuretest.New(t)
	a.AddClient(a.TenantID(), appID, appSecret)
	a.AddWorkspace("sub-1", "rg-1", "ws-1", "kv-1")
	a.AddWorkspace("sub-1", "rg-1", "ws-denied", "kv-2")
	a.DenyWorkspace("sub-1", "rg-1", "ws-denied")
	cred := secretCred(t, a, a.TenantID(), appSecret, cloud.AzurePublic)
	client, err := arm.NewClient("azuretest", "v0.0.0", cred, &arm.ClientOptions{ClientOptions: clientOptions(a)})
	if err != nil {
		t.Fatal(err)
	}
	do := func(path string) (*http.Response, error) {
		req, err := runtime.NewRequest(ctx, http.MethodGet, "https://management.azure.com"+path+"?api-version=2024-04-01")
		if err != nil {
			t.Fatal(err)
		}
		return client.Pipeline().Do(req)
	}

	resp, err := do(strings.ToLower(wsPath)) // ARM names are case-insensitive
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("workspace: %v %v", resp, err)
	}
	var ws struct {
		ID, Name   string
		Properties struct{ KeyVault string }
	}
	if err := runtime.UnmarshalAsJSON(resp, &ws); err != nil {
		t.Fatal(err)
	}
	want := "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.KeyVault/vaults/kv-1"
	if ws.ID != wsPath || ws.Name != "ws-1" || ws.Properties.KeyVault != want {
		t.Errorf("workspace = %+v", ws)
	}
	if toks := a.IssuedTokens(); toks[0].Audience != "https://management.core.windows.net" {
		t.Errorf("ARM token audience %q", toks[0].Audience)
	}

	a.FailARMRequests(1, 503)
	for _, tt := range []struct {
		path   string
		status int
		code   string
		detail string
	}{
		{wsPath, 503, "ServiceUnavailable", ""},
		{strings.Replace(wsPath, "ws-1", "ws-denied", 1), 403, "AuthorizationFailed", "The client '" + appID + "' with object id"},
		{strings.Replace(wsPath, "ws-1", "ws-none", 1), 404, "ResourceNotFound", "The Resource 'Microsoft.MachineLearningServices/workspaces/ws-none' under resource group 'rg-1' was not found."},
	} {
		resp, err := do(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		re := runtime.NewResponseError(resp).(*azcore.ResponseError)
		if re.StatusCode != tt.status || re.ErrorCode != tt.code || !strings.Contains(re.Error(), tt.detail) {
			t.Errorf("%s: %d %s\n%v", tt.path, re.StatusCode, re.ErrorCode, re)
		}
	}

	url := "https://management.azure.com" + wsPath + "?api-version=2024-04-01"
	if status, body := get(t, a, url, ""); status != 401 || !strings.Contains(body, "AuthenticationFailed") {
		t.Errorf("no token: %d %s", status, body)
	}
	if status, body := get(t, a, url, token(t, cred, vaultDflt)); status != 401 || !strings.Contains(body, "InvalidAuthenticationToken") {
		t.Errorf("vault token at ARM: %d %s", status, body)
	}
	if status, _ := get(t, a, url, token(t, cred, "https://management.azure.com/.default")); status != 200 {
		t.Errorf("management.azure.com audience: %d", status)
	}
}

// TestManagedIdentity sets MSI_ENDPOINT and MSI_SECRET for the process, so it
// cannot run in parallel. MSAL caches managed-identity tokens process-wide by
// identity and resource: this is the only test that gets one through
// azidentity, and it uses a fresh client id so that -count=N runs do not
// reuse a token from an earlier fake.
func TestManagedIdentity(t *testing.T) {
	a := azuretest.New(t)
	mi := fmt.Sprintf("mi-client-%d", time.Now().UnixNano())
	a.AddIdentity(mi)
	a.Vaults.Set("myvault", "s", "from-mi")
	for _, kv := range a.MSIEnv() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ID: azidentity.ClientID(mi), ClientOptions: clientOptions(a),
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := secretsClient(t, a, vaultURL, cred).GetSecret(ctx, "s", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	toks := a.IssuedTokens()
	if *got.Value != "from-mi" || len(toks) != 1 || toks[0].Issuer != "msi" || toks[0].ClientID != mi || toks[0].Tenant != a.TenantID() {
		t.Errorf("got %q with tokens %+v", *got.Value, toks)
	}

	base := a.MSIEndpoint() + "?api-version=2017-09-01&resource=https://vault.azure.net&clientid="
	tests := []struct {
		name, url, secret string
		status            int
	}{
		{"ok", base + mi, a.MSISecret(), 200},
		{"system-assigned", base, a.MSISecret(), 200},
		{"no secret", base + mi, "", 401},
		{"wrong secret", base + mi, "nope", 403},
		{"unknown identity", base + "someone-else", a.MSISecret(), 400},
		{"old api-version", strings.Replace(base, "2017-09-01", "2019-08-01", 1) + mi, a.MSISecret(), 400},
	}
	type tokenBody struct {
		AccessToken string  `json:"access_token"`
		ExpiresOn   float64 `json:"expires_on"`
		ExpiresIn   float64 `json:"expires_in"`
	}
	msi := func(url, secret string) (int, tokenBody) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if secret != "" {
			req.Header.Set("secret", secret)
		}
		resp, err := a.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body tokenBody
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := msi(tt.url, tt.secret)
			if status != tt.status || (tt.status == 200 && (body.AccessToken == "" || body.ExpiresOn == 0 || body.ExpiresIn == 0)) {
				t.Errorf("got %d %+v, want %d", status, body, tt.status)
			}
		})
	}
	a.FailMSIRequests(1, 500)
	if status, _ := msi(base+mi, a.MSISecret()); status != 500 {
		t.Errorf("failing MSI: %d", status)
	}
	if status, _ := msi(base+mi, a.MSISecret()); status != 200 {
		t.Errorf("MSI after the failure: %d", status)
	}
}

func TestProxyRefusesOtherHosts(t *testing.T) {
	t.Parallel()
	a := azuretest.New(t)
	if _, err := a.Client().Get("https://example.com/"); err == nil || !strings.Contains(err.Error(), "Bad Gateway") {
		t.Errorf("CONNECT example.com: %v", err)
	}
	resp, err := a.Client().Get("http://example.com/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("plain proxy request: %d", resp.StatusCode)
	}
	var got []string
	for _, r := range a.Requests() {
		got = append(got, fmt.Sprintf("%s %s %s %d", r.Service, r.Method, r.Host, r.Status))
	}
	want := []string{"proxy CONNECT example.com:443 502", "proxy GET example.com 405"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
}

func TestManyConnections(t *testing.T) {
	t.Parallel()
	a := azuretest.New(t)
	a.AddClient(a.TenantID(), appID, appSecret)
	tok := token(t, secretCred(t, a, a.TenantID(), appSecret, cloud.AzurePublic), vaultDflt)
	const n = 200
	for i := range n {
		a.Vaults.Set(fmt.Sprintf("kv%d", i), "s", "v")
	}
	a.Reset()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var statuses []int
	for i := range n {
		wg.Go(func() {
			c := a.Client() // a transport, hence a connection, per request
			defer c.CloseIdleConnections()
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://kv%d.vault.azure.net/secrets/s?api-version=1", i), nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			status := 0
			if resp, err := c.Do(req); err == nil {
				status = resp.StatusCode
				resp.Body.Close()
			} else {
				t.Error(err)
			}
			mu.Lock()
			statuses = append(statuses, status)
			mu.Unlock()
		})
	}
	wg.Wait()
	if ok := slices.Equal(statuses, slices.Repeat([]int{200}, n)); !ok || a.CountHost(".vault.azure.net") != n {
		t.Errorf("statuses %v, %d logged", statuses, a.CountHost(".vault.azure.net"))
	}
}

func TestEnvAndCA(t *testing.T) {
	t.Parallel()
	a := azuretest.New(t)
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := a.WriteCA(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !ca.IsCA {
		t.Fatalf("CA: %v", err)
	}
	want := []string{"HTTPS_PROXY=" + a.ProxyURL(), "https_proxy=" + a.ProxyURL(), "SSL_CERT_FILE=" + path, "NO_PROXY=", "no_proxy="}
	if diff := cmp.Diff(want, a.Env(path)); diff != "" {
		t.Errorf("Env (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(a.ProxyURL(), "http://127.0.0.1:") || !strings.HasPrefix(a.MSIEndpoint(), "http://127.0.0.1:") {
		t.Errorf("proxy %s, MSI %s", a.ProxyURL(), a.MSIEndpoint())
	}
}

func TestVaultFaultsThroughProxy(t *testing.T) {
	t.Parallel()
	a := azuretest.New(t)
	a.AddClient(a.TenantID(), appID, appSecret)
	a.Vaults.Set("myvault", "s", "v")
	c := secretsClient(t, a, vaultURL, secretCred(t, a, a.TenantID(), appSecret, cloud.AzurePublic))
	if _, err := c.GetSecret(ctx, "s", "", nil); err != nil {
		t.Fatal(err)
	}
	a.Vaults.AddFault(vaulttest.Fault{Mode: vaulttest.ResetConn, Times: -1})
	if _, err := c.GetSecret(ctx, "s", "", nil); err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("reset through the tunnel: %v", err)
	}
	a.Vaults.ClearFaults()
	a.Vaults.AddFault(vaulttest.Fault{Status: 429, RetryAfter: time.Second})
	_, err := c.GetSecret(ctx, "s", "", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 429 || re.RawResponse.Header.Get("Retry-After") != "1" {
		t.Errorf("throttled through the tunnel: %v", err)
	}
	var statuses []int
	for _, r := range a.Requests() {
		if r.Service == "vault" {
			statuses = append(statuses, r.Status)
		}
	}
	// The transport retries a GET once when a reused connection drops.
	if diff := cmp.Diff([]int{401, 200, 0, 0, 429}, statuses); diff != "" {
		t.Errorf("vault statuses (-want +got):\n%s", diff)
	}
}
