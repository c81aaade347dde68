package resolve

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets/fake"
	"github.com/google/go-cmp/cmp"
)

const testVault = "https://kv1.vault.azure.net"

// fakeSecret is one secret of the azsecrets/fake server below.
type fakeSecret struct {
	value              string
	enabled            bool
	exp, nbf           time.Time
	status             int // an error status instead of the secret
	failTimes          int // answer status this many times, then the secret
	code               string
	contentType, label string
}

// fakeVault serves fakeSecrets through the real azsecrets client and counts
// the GETs per secret name.
type fakeVault struct {
	mu      sync.Mutex
	secrets map[string]*fakeSecret
	gets    map[string]int
}

func newFakeVault(secrets map[string]*fakeSecret) *fakeVault {
	return &fakeVault{secrets: secrets, gets: map[string]int{}}
}

func (f *fakeVault) provider(t testing.TB, cred azcore.TokenCredential) *KeyVault {
	t.Helper()
	srv := fake.Server{
		GetSecret: func(_ context.Context, name, version string, _ *azsecrets.GetSecretOptions) (resp azfake.Responder[azsecrets.GetSecretResponse], errResp azfake.ErrorResponder) {
			f.mu.Lock()
			defer f.mu.Unlock()
			name = strings.ToLower(name)
			f.gets[name]++
			s, ok := f.secrets[name]
			switch {
			case !ok:
				errResp.SetResponseError(http.StatusNotFound, "SecretNotFound")
				return
			case s.status != 0 && (s.failTimes == 0 || f.gets[name] <= s.failTimes):
				errResp.SetResponseError(s.status, s.code)
				return
			}
			if version == "" {
				version = "11111111111111111111111111111111"
			}
			id := azsecrets.ID(testVault + "/secrets/" + name + "/" + version)
			attrs := &azsecrets.SecretAttributes{Enabled: to.Ptr(s.enabled), Created: to.Ptr(time.Unix(1700000000, 0).UTC())}
			if !s.exp.IsZero() {
				attrs.Expires = to.Ptr(s.exp)
			}
			if !s.nbf.IsZero() {
				attrs.NotBefore = to.Ptr(s.nbf)
			}
			resp.SetResponse(http.StatusOK, azsecrets.GetSecretResponse{Secret: azsecrets.Secret{
				ID: &id, Value: to.Ptr(s.value), Attributes: attrs, ContentType: to.Ptr(s.contentType),
				Tags: map[string]*string{"label": to.Ptr(s.label)},
			}}, nil)
			return
		},
	}
	if cred == nil {
		cred = &azfake.TokenCredential{}
	}
	return NewKeyVault(cred, KeyVaultOptions{
		Client:  azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: fake.NewServerTransport(&srv)}},
		Backoff: Backoff{Base: time.Millisecond, Cap: 5 * time.Millisecond},
	})
}

func plan(t testing.TB, pairs ...string) []Planned {
	t.Helper()
	maps, err := Collect(Sources{Maps: pairs})
	if err != nil {
		t.Fatal(err)
	}
	return Plan(maps, testVault, ".vault.azure.net")
}

func TestFetchKeyVault(t *testing.T) {
	t.Parallel()
	now := time.Now()
	fv := newFakeVault(map[string]*fakeSecret{
		"db-pass": {value: "pw1", enabled: true, contentType: "text/plain", label: "prod"},
		"api-key": {value: "k2", enabled: true, exp: now.Add(time.Hour)},
	})
	p := fv.provider(t, nil)
	got, err := Fetch(context.Background(), plan(t, "DB_PASS=db-pass", "ALSO=DB-Pass", "SAME=https://kv1.vault.azure.net/secrets/db-pass", "API_KEY"), p, now)
	if err != nil {
		t.Fatal(err)
	}
	var envs []string
	for _, v := range got {
		envs = append(envs, v.Env+"="+v.Secret.Value)
	}
	if diff := cmp.Diff([]string{"DB_PASS=pw1", "ALSO=pw1", "SAME=pw1", "API_KEY=k2"}, envs); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
	if fv.gets["db-pass"] != 1 || fv.gets["api-key"] != 1 {
		t.Errorf("gets = %v, want each secret fetched once", fv.gets)
	}
	s := got[0].Secret
	if s.Version != "11111111111111111111111111111111" || s.ContentType != "text/plain" || s.Tags["label"] != "prod" || !s.Enabled || s.Created.IsZero() || s.Local {
		t.Errorf("attributes not carried: %+v", s)
	}
}

func TestFetchFailuresAllAtOnce(t *testing.T) {
	t.Parallel()
	now := time.Now()
	fv := newFakeVault(map[string]*fakeSecret{
		"ok":       {value: "v", enabled: true},
		"off":      {value: "v", enabled: false},
		"old":      {value: "v", enabled: true, exp: now.Add(-time.Minute)},
		"later":    {value: "v", enabled: true, nbf: now.Add(time.Hour)},
		"denied":   {status: http.StatusForbidden, code: "Forbidden"},
		"badreq":   {status: http.StatusBadRequest, code: "BadParameter"},
		"teapot":   {status: http.StatusTeapot, code: "Teapot"},
		"unauthed": {status: http.StatusUnauthorized, code: "Unauthorized"},
	})
	_, err := Fetch(context.Background(), plan(t, "OK=ok", "A=missing-a", "B=missing-b", "OFF=off", "OLD=old", "LATER=later",
		"DENIED=denied", "BADREQ=badreq", "TEAPOT=teapot", "UNAUTHED=unauthed"), fv.provider(t, nil), now)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Fetch = %v, want Errors", err)
	}
	type row struct {
		Env   string
		Kind  Kind
		Cause string
	}
	var got []row
	for _, e := range errs {
		fe := e.(*FetchError)
		got = append(got, row{fe.Env, fe.Kind(), fe.Cause})
		if fe.Vault != testVault || fe.Hint == "" {
			t.Errorf("%s: vault %q hint %q", fe.Env, fe.Vault, fe.Hint)
		}
	}
	want := []row{
		{"A", KindMissing, "not found in the vault"},
		{"B", KindMissing, "not found in the vault"},
		{"OFF", KindMissing, "the secret is disabled"},
		{"OLD", KindMissing, "the secret expired at " + now.Add(-time.Minute).UTC().Format(time.RFC3339)},
		{"LATER", KindMissing, "the secret is not valid before " + now.Add(time.Hour).UTC().Format(time.RFC3339)},
		{"DENIED", KindDenied, "access denied: the identity may not read secrets in this vault"},
		{"BADREQ", KindUsage, "the vault rejected the request: "},
		{"TEAPOT", KindUnavailable, "the vault answered 418 I'm a teapot"},
		{"UNAUTHED", KindDenied, "the vault refused the token (401)"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
	if errs.Kind() != KindUsage {
		t.Errorf("Errors.Kind = %v, want the most severe, usage", errs.Kind())
	}
	if !strings.Contains(errs[0].Error(), "A: secret missing-a in https://kv1.vault.azure.net: not found in the vault") {
		t.Errorf("message = %q", errs[0])
	}
}

func TestFetchRetriesTransientFaults(t *testing.T) {
	t.Parallel()
	fv := newFakeVault(map[string]*fakeSecret{
		"throttled": {value: "v1", enabled: true, status: http.StatusTooManyRequests, code: "Throttled", failTimes: 5},
		"flaky":     {value: "v2", enabled: true, status: http.StatusServiceUnavailable, failTimes: 3},
	})
	got, err := Fetch(context.Background(), plan(t, "T=throttled", "F=flaky"), fv.provider(t, nil), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Secret.Value != "v1" || got[1].Secret.Value != "v2" {
		t.Errorf("values %q %q", got[0].Secret.Value, got[1].Secret.Value)
	}
	if fv.gets["throttled"] != 6 || fv.gets["flaky"] != 4 {
		t.Errorf("gets = %v, want 6 and 4", fv.gets)
	}
}

func TestFetchGivesUpWhenTheTimeoutRunsOut(t *testing.T) {
	t.Parallel()
	fv := newFakeVault(map[string]*fakeSecret{"x": {status: http.StatusTooManyRequests, code: "Throttled"}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := Fetch(ctx, plan(t, "X=x"), fv.provider(t, nil), time.Now())
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Kind() != KindUnavailable {
		t.Fatalf("Fetch = %v, want an unavailable FetchError", err)
	}
	if !strings.Contains(fe.Cause, "the timeout ran out after") || !strings.Contains(fe.Cause, "throttling") {
		t.Errorf("cause = %q", fe.Cause)
	}
	// The fake may still be answering the last GET the timeout cut short.
	fv.mu.Lock()
	defer fv.mu.Unlock()
	if fv.gets["x"] < 2 {
		t.Errorf("gets = %d, want retries until the timeout", fv.gets["x"])
	}
}

func TestLocalFile(t *testing.T) {
	t.Parallel()
	l, err := NewLocalFile("s.env", []byte("DB_PASS=pw\napi_key=k\nEMPTY=\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	maps, err := Collect(Sources{Maps: []string{"DB_PASS", "K=API-KEY/" + ver, "E=empty", "M=missing"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Fetch(context.Background(), Plan(maps, "", ""), l, time.Now())
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Env != "M" || fe.Kind() != KindMissing || !strings.Contains(fe.Hint, "MISSING=... to s.env") {
		t.Fatalf("Fetch = %v (hint %q), want M missing with a hint", err, fe.Hint)
	}
	got, err := Fetch(context.Background(), Plan(maps[:3], "", ""), l, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"pw", "k", ""} {
		if got[i].Secret.Value != want || !got[i].Secret.Local {
			t.Errorf("%s = %q (local %v), want %q", got[i].Env, got[i].Secret.Value, got[i].Secret.Local, want)
		}
	}
}

func TestLocalFileConflict(t *testing.T) {
	t.Parallel()
	_, err := NewLocalFile("s.env", []byte("DB_PASS=a\ndb_pass=b\n"), nil)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Kind() != KindConfig || fe.Line != 2 {
		t.Fatalf("NewLocalFile = %v, want a config error on line 2", err)
	}
	if strings.Contains(err.Error(), "=a") || strings.Contains(err.Error(), "=b") {
		t.Errorf("error shows a value: %v", err)
	}
	if _, err := NewLocalFile("s.env", []byte("DB_PASS=same\ndb_pass=same\n"), nil); err != nil {
		t.Errorf("equal values are no conflict: %v", err)
	}
}
