package vaulttest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/google/go-cmp/cmp"

	"github.com/runsecrets/runsecrets/resolve/vaulttest"
)

// staticCred hands out one token and records what the challenge asked for.
type staticCred struct {
	token string
	mu    sync.Mutex
	asked []policy.TokenRequestOptions
}

func (c *staticCred) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.asked = append(c.asked, o)
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// newClient returns a real azsecrets client for ts; retries are off so tests
// see each fault.
func newClient(tb testing.TB, ts *httptest.Server, cred azcore.TokenCredential) *azsecrets.Client {
	tb.Helper()
	if cred == nil {
		cred = &staticCred{token: "tok"}
	}
	c, err := azsecrets.NewClient(ts.URL, cred, &azsecrets.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: ts.Client(),
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// raw sends a plain HTTP request with the given Host header and token.
func raw(tb testing.TB, ts *httptest.Server, method, host, path, token, body string) (*http.Response, string) {
	tb.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp, string(b)
}

func responseError(tb testing.TB, err error) *azcore.ResponseError {
	tb.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		tb.Fatalf("got error %v, want *azcore.ResponseError", err)
	}
	return re
}

var ctx = context.Background()

func TestGetLatestAndByVersion(t *testing.T) {
	t.Parallel()
	srv, ts := vaulttest.NewTLS(t)
	exp := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	v1 := srv.Set("", "db-pass", "old")
	v2 := srv.Set("", "DB-Pass", "new", vaulttest.ContentType("text/plain"), vaulttest.Expires(exp),
		vaulttest.Tags(map[string]string{"team": "ml"}))
	c := newClient(t, ts, nil)

	latest, err := c.GetSecret(ctx, "DB-PASS", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *latest.Value != "new" || latest.ID.Version() != v2 || latest.ID.Name() != "db-pass" {
		t.Errorf("latest = %q %s/%s, want new db-pass/%s", *latest.Value, latest.ID.Name(), latest.ID.Version(), v2)
	}
	if got := string(*latest.ID); got != ts.URL+"/secrets/db-pass/"+v2 {
		t.Errorf("id = %s", got)
	}
	a := latest.Attributes
	if !*a.Enabled || !a.Expires.Equal(exp) || a.NotBefore != nil || *a.RecoveryLevel == "" {
		t.Errorf("attributes = enabled %v exp %v nbf %v", *a.Enabled, a.Expires, a.NotBefore)
	}
	if *latest.ContentType != "text/plain" || *latest.Tags["team"] != "ml" {
		t.Errorf("contentType %q tags %v", *latest.ContentType, latest.Tags)
	}

	old, err := c.GetSecret(ctx, "db-pass", v1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *old.Value != "old" || old.ID.Version() != v1 {
		t.Errorf("by version = %q %s, want old %s", *old.Value, old.ID.Version(), v1)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(v1) || v1 == v2 {
		t.Errorf("versions %q %q are not distinct 32-hex ids", v1, v2)
	}
}

func TestChallengeOncePerClient(t *testing.T) {
	t.Parallel()
	srv, ts := vaulttest.NewTLS(t, vaulttest.WithTenant("tenant-a"))
	srv.Set("", "a", "1")
	cred := &staticCred{token: "tok"}
	c := newClient(t, ts, cred)
	for range 3 {
		if _, err := c.GetSecret(ctx, "a", "", nil); err != nil {
			t.Fatal(err)
		}
	}
	st := srv.Stats()
	if st.Challenges != 1 || st.Requests != 4 {
		t.Errorf("challenges %d requests %d, want 1 and 4", st.Challenges, st.Requests)
	}
	var auth []bool
	for _, e := range srv.Log() {
		auth = append(auth, e.Authorized)
	}
	if diff := cmp.Diff([]bool{false, true, true, true}, auth); diff != "" {
		t.Errorf("authorized per request (-want +got):\n%s", diff)
	}
	want := policy.TokenRequestOptions{TenantID: "tenant-a", Scopes: []string{"https://vault.azure.net/.default"}, EnableCAE: true}
	if diff := cmp.Diff(want, cred.asked[0]); diff != "" {
		t.Errorf("token request parsed from the challenge (-want +got):\n%s", diff)
	}
}

func TestChallengeShape(t *testing.T) {
	t.Parallel()
	_, ts := vaulttest.NewTLS(t)
	tests := []struct {
		name, host, want string
	}{
		{"public", "kv1.vault.azure.net", `Bearer authorization="https://login.microsoftonline.com/` + vaulttest.DefaultTenant + `", resource="https://vault.azure.net"`},
		{"china", "kv1.vault.azure.cn:443", `Bearer authorization="https://login.chinacloudapi.cn/` + vaulttest.DefaultTenant + `", resource="https://vault.azure.cn"`},
		{"usgov", "kv1.vault.usgovcloudapi.net", `Bearer authorization="https://login.microsoftonline.us/` + vaulttest.DefaultTenant + `", resource="https://vault.usgovcloudapi.net"`},
		{"loopback", "", `Bearer authorization="https://login.microsoftonline.com/` + vaulttest.DefaultTenant + `", resource="https://vault.azure.net"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := raw(t, ts, "GET", tt.host, "/secrets/x/?api-version=2026-04-01", "", "")
			if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != tt.want {
				t.Errorf("got %d %q, want 401 %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), tt.want)
			}
			const wantBody = `{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer, PoP, or MTLS_POP token."}}`
			if body != wantBody {
				t.Errorf("body = %s", body)
			}
		})
	}
}

func TestVaultSelectedByHost(t *testing.T) {
	t.Parallel()
	srv, ts := vaulttest.NewTLS(t)
	v := srv.Set("MyVault", "k", "in-myvault")
	resp, body := raw(t, ts, "GET", "myvault.vault.azure.net", "/secrets/K?api-version=1", "tok", "")
	var got struct{ Value, ID string }
	if err := json.Unmarshal([]byte(body), &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if got.Value != "in-myvault" || got.ID != "https://myvault.vault.azure.net/secrets/k/"+v {
		t.Errorf("got %+v", got)
	}
	if resp, _ := raw(t, ts, "GET", "", "/secrets/k?api-version=1", "tok", ""); resp.StatusCode != 404 {
		t.Errorf("default vault served %d, want 404", resp.StatusCode)
	}
	if n := srv.Stats().ByVault["myvault"]; n != 1 {
		t.Errorf("requests to myvault = %d, want 1", n)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	srv, ts := vaulttest.NewTLS(t)
	srv.Set("", "off", "x", vaulttest.Enabled(false))
	c := newClient(t, ts, nil)

	_, err := c.GetSecret(ctx, "missing", "", nil)
	if re := responseError(t, err); re.StatusCode != 404 || re.ErrorCode != "SecretNotFound" {
		t.Errorf("missing: %d %s", re.StatusCode, re.ErrorCode)
	}
	_, err = c.GetSecret(ctx, "off", "", nil)
	if re := responseError(t, err); re.StatusCode != 403 || re.ErrorCode != "Forbidden" {
		t.Errorf("disabled: %d %s", re.StatusCode, re.ErrorCode)
	}
	_, err = c.GetSecret(ctx, "db_pass", "", nil)
	if re := responseError(t, err); re.StatusCode != 400 || re.ErrorCode != "BadParameter" {
		t.Errorf("bad name: %d %s", re.StatusCode, re.ErrorCode)
	}
	big := strings.Repeat("x", vaulttest.MaxValueBytes+1)
	_, err = c.SetSecret(ctx, "big", azsecrets.SetSecretParameters{Value: &big}, nil)
	if re := responseError(t, err); re.StatusCode != 400 || re.ErrorCode != "BadParameter" {
		t.Errorf("too big: %d %s", re.StatusCode, re.ErrorCode)
	}
	resp, body := raw(t, ts, "GET", "", "/secrets/missing/0123456789abcdef0123456789abcdef?api-version=1", "tok", "")
	if resp.StatusCode != 404 || !strings.Contains(body, "(name/id) missing/0123456789abcdef0123456789abcdef was not found") {
		t.Errorf("missing version: %d %s", resp.StatusCode, body)
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fault     vaulttest.Fault
		status    int    // 0: a transport or decoding error
		code      string // ErrorCode for a status
		retryHdr  string
		errSubstr string
	}{
		{name: "429", fault: vaulttest.Fault{Status: 429}, status: 429, code: "Throttled"},
		{name: "429 retry-after", fault: vaulttest.Fault{Status: 429, RetryAfter: 2500 * time.Millisecond}, status: 429, code: "Throttled", retryHdr: "3"},
		{name: "503", fault: vaulttest.Fault{Status: 503}, status: 503, code: "ServiceUnavailable"},
		{name: "500", fault: vaulttest.Fault{Status: 500}, status: 500, code: "InternalServerError"},
		{name: "close", fault: vaulttest.Fault{Mode: vaulttest.CloseConn, Times: -1}, errSubstr: "EOF"},
		{name: "reset", fault: vaulttest.Fault{Mode: vaulttest.ResetConn, Times: -1}, errSubstr: "connection reset"},
		{name: "truncated", fault: vaulttest.Fault{Mode: vaulttest.TruncatedJSON}, errSubstr: "unexpected end of JSON"},
		{name: "html", fault: vaulttest.Fault{Mode: vaulttest.HTMLBody}, errSubstr: "invalid character '<'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, ts := vaulttest.NewTLS(t)
			srv.Set("", "s", "v")
			c := newClient(t, ts, nil)
			if _, err := c.GetSecret(ctx, "s", "", nil); err != nil { // get past the challenge
				t.Fatal(err)
			}
			f := tt.fault
			f.Secret = "S"
			srv.AddFault(f)
			_, err := c.GetSecret(ctx, "s", "", nil)
			switch {
			case err == nil:
				t.Fatal("no error")
			case tt.status != 0:
				re := responseError(t, err)
				if re.StatusCode != tt.status || re.ErrorCode != tt.code || re.RawResponse.Header.Get("Retry-After") != tt.retryHdr {
					t.Errorf("got %d %s Retry-After %q", re.StatusCode, re.ErrorCode, re.RawResponse.Header.Get("Retry-After"))
				}
			case !strings.Contains(err.Error(), tt.errSubstr):
				t.Errorf("error %q does not mention %q", err, tt.errSubstr)
			}
			srv.ClearFaults()
			if got, err := c.GetSecret(ctx, "s", "", nil); err != nil || *got.Value != "v" {
				t.Errorf("after the fault: %v", err)
			}
		})
	}
}

func TestFaultScope(t *testing.T) {
	t.Parallel()
	srv, ts := vaulttest.NewTLS(t)
	srv.Set("", "a", "1")
	srv.Set("", "b", "2")
	c := newClient(t, ts, nil)
	srv.AddFault(vaulttest.Fault{Secret: "a", Times: 2, Status: 503})
	var codes []int
	for _, name := range []string{"b", "a", "b", "a", "a"} {
		_, err := c.GetSecret(ctx, name, "", nil)
		code := 200
		if err != nil {
			code = responseError(t, err).StatusCode
		}
		codes = append(codes, code)
	}
	if diff := cmp.Diff([]int{200, 503, 200, 503, 200}, codes); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}

func TestThrottle(t *testing.T) {
	t.Parallel()
	for _, retryAfter := range []bool{true, false} {
		t.Run(strconv.FormatBool(retryAfter), func(t *testing.T) {
			t.Parallel()
			srv, ts := vaulttest.NewTLS(t)
			srv.Set("", "s", "v")
			c := newClient(t, ts, nil)
			srv.SetThrottle(3, time.Minute, retryAfter)
			ok := 0
			for range 5 {
				_, err := c.GetSecret(ctx, "s", "", nil)
				if err == nil {
					ok++
					continue
				}
				re := responseError(t, err)
				hdr := re.RawResponse.Header.Get("Retry-After")
				n, _ := strconv.Atoi(hdr)
				if re.StatusCode != 429 || re.ErrorCode != "Throttled" || (retryAfter != (n >= 1 && n <= 60)) {
					t.Errorf("throttled: %d %s Retry-After %q", re.StatusCode, re.ErrorCode, hdr)
				}
			}
			if ok != 3 || srv.Stats().Throttled != 2 {
				t.Errorf("%d succeeded and %d throttled, want 3 and 2", ok, srv.Stats().Throttled)
			}
		})
	}
}

func TestSetSecretMakesNewVersion(t *testing.T) {
	t.Parallel()
	srv, ts := vaulttest.NewTLS(t)
	c := newClient(t, ts, nil)
	var ids []string
	for _, v := range []string{"one", "two"} {
		ct, team := "text/plain", "ml"
		resp, err := c.SetSecret(ctx, "api-key", azsecrets.SetSecretParameters{Value: &v, ContentType: &ct, Tags: map[string]*string{"team": &team}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *resp.Value != v || *resp.ContentType != ct || !*resp.Attributes.Enabled {
			t.Errorf("set returned %q %q", *resp.Value, *resp.ContentType)
		}
		ids = append(ids, resp.ID.Version())
	}
	got, ok := srv.Get("", "API-KEY", "")
	if !ok || got.Value != "two" || got.Version != ids[1] || got.Tags["team"] != "ml" {
		t.Errorf("current = %+v", got)
	}
	if vs := srv.Versions("", "api-key"); len(vs) != 2 || vs[0].Version != ids[0] || vs[0].Value != "one" {
		t.Errorf("versions = %+v", vs)
	}
}

func TestUpdateSecretProperties(t *testing.T) {
	t.Parallel()
	srv, ts := vaulttest.NewTLS(t)
	v := srv.Set("", "s", "v")
	c := newClient(t, ts, nil)
	off := false
	resp, err := c.UpdateSecretProperties(ctx, "s", v, azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: &off},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Value != nil || *resp.Attributes.Enabled || resp.ID.Version() != v {
		t.Errorf("update returned value %v enabled %v", resp.Value, *resp.Attributes.Enabled)
	}
	if _, err := c.GetSecret(ctx, "s", v, nil); responseError(t, err).StatusCode != 403 {
		t.Errorf("disabled version served: %v", err)
	}
}

func TestListPaging(t *testing.T) {
	t.Parallel()
	srv, ts := vaulttest.NewTLS(t, vaulttest.WithPageSize(2))
	for _, n := range []string{"e", "C", "a", "d", "b"} {
		srv.Set("", n, "value-"+n)
	}
	c := newClient(t, ts, nil)
	var names []string
	pager := c.NewListSecretPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Value {
			if strings.Count(string(*p.ID), "/") != 4 || p.Attributes == nil {
				t.Errorf("item %s has a version or no attributes", *p.ID)
			}
			names = append(names, p.ID.Name())
		}
	}
	if diff := cmp.Diff([]string{"a", "b", "C", "d", "e"}, names); diff != "" {
		t.Errorf("listed names (-want +got):\n%s", diff)
	}
	lists := 0
	for _, e := range srv.Log() {
		if e.Path == "/secrets" && e.Status == 200 {
			lists++
		}
	}
	if lists != 3 {
		t.Errorf("%d list pages served, want 3", lists)
	}
}

func TestSetPageSize(t *testing.T) {
	t.Parallel()
	srv, ts := vaulttest.NewTLS(t)
	for _, n := range []string{"a", "b", "c"} {
		srv.Set("kv", n, n)
	}
	pageLen := func() int {
		_, body := raw(t, ts, "GET", "kv.vault.azure.net", "/secrets?api-version=2026-04-01", "tok", "")
		var page struct{ Value []map[string]any }
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatal(err)
		}
		return len(page.Value)
	}
	srv.SetPageSize(1)
	if n := pageLen(); n != 1 {
		t.Errorf("page of %d after SetPageSize(1), want 1", n)
	}
	srv.SetPageSize(0)
	if n := pageLen(); n != 3 {
		t.Errorf("page of %d after SetPageSize(0), want all 3", n)
	}
}

func TestNextLinkCarriesPort(t *testing.T) {
	t.Parallel()
	srv, ts := vaulttest.NewTLS(t)
	for _, n := range []string{"a", "b", "c"} {
		srv.Set("kv", n, n)
	}
	_, body := raw(t, ts, "GET", "kv.vault.azure.net", "/secrets?api-version=2026-04-01&maxresults=2", "tok", "")
	var page struct {
		Value    []map[string]any
		NextLink string
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Value) != 2 || !strings.HasPrefix(page.NextLink, "https://kv.vault.azure.net:443/secrets?api-version=2026-04-01&$skiptoken=") {
		t.Errorf("page of %d, nextLink %q", len(page.Value), page.NextLink)
	}
	if _, hasValue := page.Value[0]["value"]; hasValue {
		t.Error("list item carries a value")
	}
}

func TestListVersions(t *testing.T) {
	t.Parallel()
	srv, ts := vaulttest.NewTLS(t, vaulttest.WithPageSize(2))
	var want []string
	for _, v := range []string{"1", "2", "3"} {
		want = append(want, srv.Set("", "s", v))
	}
	srv.Set("", "other", "x")
	c := newClient(t, ts, nil)
	var got []string
	pager := c.NewListSecretPropertiesVersionsPager("s", nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Value {
			got = append(got, p.ID.Version())
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}
}

func TestPeakConcurrency(t *testing.T) {
	t.Parallel()
	srv, ts := vaulttest.NewTLS(t)
	srv.Set("", "s", "v")
	// Keep 8 connections open, so the measured round needs no TLS handshakes
	// and its requests arrive together even on a loaded machine.
	ts.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 8
	c := newClient(t, ts, nil)
	if _, err := c.GetSecret(ctx, "s", "", nil); err != nil {
		t.Fatal(err)
	}
	srv.SetLatency(300 * time.Millisecond)
	getAll := func() {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, err := c.GetSecret(ctx, "s", "", nil); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	getAll()
	srv.Reset()
	getAll()
	if st := srv.Stats(); st.PeakInFlight != 8 || st.Requests != 8 || st.Challenges != 0 {
		t.Errorf("peak %d requests %d challenges %d, want 8 8 0", st.PeakInFlight, st.Requests, st.Challenges)
	}
}

func TestTokenCheck(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	check := func(token, resource, tenant string) bool {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, resource+" "+tenant)
		return token == "good"
	}
	srv, ts := vaulttest.NewTLS(t, vaulttest.WithTokenCheck(check))
	srv.Set("", "s", "v")
	srv.SetVaultTenant("", "other-tenant")

	_, err := newClient(t, ts, &staticCred{token: "bad"}).GetSecret(ctx, "s", "", nil)
	if re := responseError(t, err); re.StatusCode != 401 || re.RawResponse.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("bad token: %d", re.StatusCode)
	}
	if _, err := newClient(t, ts, &staticCred{token: "good"}).GetSecret(ctx, "s", "", nil); err != nil {
		t.Errorf("good token: %v", err)
	}
	if seen[0] != "https://vault.azure.net other-tenant" {
		t.Errorf("check saw %q", seen[0])
	}
}

func TestStateHelpers(t *testing.T) {
	t.Parallel()
	srv, ts := vaulttest.NewTLS(t)
	v1 := srv.Set("", "s", "one")
	v2 := srv.Set("", "s", "two", vaulttest.PinVersion("0123456789abcdef0123456789abcdef"))
	if v2 != "0123456789abcdef0123456789abcdef" {
		t.Errorf("pinned version = %s", v2)
	}
	c := newClient(t, ts, nil)

	past := time.Now().Add(-time.Hour)
	if err := srv.Update("", "s", "", vaulttest.Expires(past)); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetSecret(ctx, "s", "", nil)
	if err != nil || !got.Attributes.Expires.Equal(past.Truncate(time.Second)) {
		t.Errorf("expired secret: %v %v (Key Vault serves it with its exp)", err, got.Attributes)
	}
	if err := srv.DeleteVersion("", "s", v2); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.GetSecret(ctx, "s", "", nil); got.ID.Version() != v1 {
		t.Errorf("after deleting the current version, current = %s, want %s", got.ID.Version(), v1)
	}
	if err := srv.Disable("", "s", v1); err != nil {
		t.Fatal(err)
	}
	if v, _ := srv.Get("", "s", v1); v.Enabled {
		t.Error("still enabled")
	}
	if err := srv.Delete("", "s"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSecret(ctx, "s", "", nil); responseError(t, err).ErrorCode != "SecretNotFound" {
		t.Errorf("deleted secret: %v", err)
	}
	if err := srv.Delete("", "s"); err == nil {
		t.Error("deleting a missing secret succeeded")
	}
}
