package resolve

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/runsecrets/runsecrets/resolve/vaulttest"
)

// countingCred is a credential that counts its token requests and can
// pause each one, like a real identity endpoint.
type countingCred struct {
	calls   atomic.Int32
	latency time.Duration
	err     error
}

func (c *countingCred) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.calls.Add(1)
	if c.latency > 0 {
		time.Sleep(c.latency)
	}
	if c.err != nil {
		return azcore.AccessToken{}, c.err
	}
	return azcore.AccessToken{Token: "tok", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// wireVault starts a TLS fake vault and a provider that reaches it with the
// real azsecrets client. Every secret lives in vaulttest's default vault.
func wireVault(t testing.TB, cred azcore.TokenCredential, concurrency int) (*vaulttest.Server, *KeyVault, string) {
	t.Helper()
	srv, ts := vaulttest.NewTLS(t)
	kv := NewKeyVault(cred, KeyVaultOptions{
		Client: azsecrets.ClientOptions{
			ClientOptions:                        azcore.ClientOptions{Transport: ts.Client()},
			DisableChallengeResourceVerification: true, // a 127.0.0.1 host never matches vault.azure.net
		},
		Concurrency: concurrency,
		Backoff:     Backoff{Base: time.Millisecond, Cap: 10 * time.Millisecond},
	})
	return srv, kv, ts.URL
}

func wirePlan(t testing.TB, vaultURL string, n int) []Planned {
	t.Helper()
	var pairs []string
	for i := range n {
		pairs = append(pairs, fmt.Sprintf("S%d=secret-%d", i, i))
	}
	maps, err := Collect(Sources{Maps: pairs})
	if err != nil {
		t.Fatal(err)
	}
	return Plan(maps, vaultURL, "")
}

func TestKeyVaultOneChallengeThenFanOut(t *testing.T) {
	t.Parallel()
	cred := &countingCred{latency: 20 * time.Millisecond}
	srv, kv, url := wireVault(t, cred, 8)
	const n = 40
	for i := range n {
		srv.Set(vaulttest.DefaultVault, fmt.Sprintf("secret-%d", i), fmt.Sprintf("value-%d", i))
	}
	srv.SetLatency(10 * time.Millisecond)
	got, err := Fetch(context.Background(), wirePlan(t, url, n), kv, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v.Secret.Value != fmt.Sprintf("value-%d", i) {
			t.Errorf("%s = %q", v.Env, v.Secret.Value)
		}
	}
	st := srv.Stats()
	if st.Requests != n+1 || st.Challenges != 1 {
		t.Errorf("requests = %d, challenges = %d; want %d and 1", st.Requests, st.Challenges, n+1)
	}
	if st.PeakInFlight != 8 {
		t.Errorf("peak concurrency = %d, want exactly --concurrency 8", st.PeakInFlight)
	}
	if c := cred.calls.Load(); c != 1 {
		t.Errorf("token requests = %d, want 1", c)
	}
}

func TestKeyVaultByVersionAndMissing(t *testing.T) {
	t.Parallel()
	srv, kv, url := wireVault(t, &azfake.TokenCredential{}, 4)
	v1 := srv.Set(vaulttest.DefaultVault, "db-pass", "old")
	srv.Set(vaulttest.DefaultVault, "db-pass", "new")
	maps, err := Collect(Sources{Maps: []string{"OLD=db-pass/" + v1, "NEW=DB-PASS"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Fetch(context.Background(), Plan(maps, url, ""), kv, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Secret.Value != "old" || got[0].Secret.Version != v1 || got[1].Secret.Value != "new" {
		t.Errorf("got %+v / %+v", got[0].Secret, got[1].Secret)
	}
	maps, _ = Collect(Sources{Maps: []string{"A=nope", "B=db-pass/" + strings.Repeat("0", 32)}})
	_, err = Fetch(context.Background(), Plan(maps, url, ""), kv, time.Now())
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 2 || errs.Kind() != KindMissing {
		t.Fatalf("Fetch = %v, want two missing", err)
	}
}

func TestKeyVaultDisabledThrottledFaults(t *testing.T) {
	t.Parallel()
	srv, kv, url := wireVault(t, &azfake.TokenCredential{}, 4)
	for _, n := range []string{"off", "busy", "down", "reset", "cut", "html"} {
		srv.Set(vaulttest.DefaultVault, n, "v-"+n)
	}
	ver := srv.Versions(vaulttest.DefaultVault, "off")[0].Version
	if err := srv.Disable(vaulttest.DefaultVault, "off", ver); err != nil {
		t.Fatal(err)
	}
	srv.AddFault(vaulttest.Fault{Secret: "busy", Times: 3, Status: 429})
	srv.AddFault(vaulttest.Fault{Secret: "down", Times: 2, Status: 503})
	srv.AddFault(vaulttest.Fault{Secret: "reset", Times: 2, Mode: vaulttest.ResetConn})
	srv.AddFault(vaulttest.Fault{Secret: "cut", Times: 2, Mode: vaulttest.TruncatedJSON})
	srv.AddFault(vaulttest.Fault{Secret: "html", Times: 2, Mode: vaulttest.HTMLBody})
	maps, _ := Collect(Sources{Maps: []string{"BUSY=busy", "DOWN=down", "RESET=reset", "CUT=cut", "HTML=html"}})
	got, err := Fetch(context.Background(), Plan(maps, url, ""), kv, time.Now())
	if err != nil {
		t.Fatalf("transient faults were not retried: %v", err)
	}
	for _, v := range got {
		if v.Secret.Value != "v-"+strings.ToLower(v.Env) {
			t.Errorf("%s = %q", v.Env, v.Secret.Value)
		}
	}
	maps, _ = Collect(Sources{Maps: []string{"OFF=off"}})
	_, err = Fetch(context.Background(), Plan(maps, url, ""), kv, time.Now())
	var fe *FetchError
	if !errors.As(err, &fe) || fe.Kind() != KindMissing || fe.Cause != "the secret is disabled" {
		t.Fatalf("disabled: %v", err)
	}
}

func TestKeyVaultIdentityFailureIsSharedNotRepeated(t *testing.T) {
	t.Parallel()
	cred := &countingCred{err: errors.New("no identity here")}
	srv, kv, url := wireVault(t, cred, 4)
	_, err := Fetch(context.Background(), wirePlan(t, url, 10), kv, time.Now())
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 10 || errs.Kind() != KindDenied {
		t.Fatalf("Fetch = %v, want 10 denied", err)
	}
	if c := cred.calls.Load(); c != 1 {
		t.Errorf("token requests = %d, want 1: the other secrets share the failure", c)
	}
	if r := srv.Stats().Requests; r != 1 {
		t.Errorf("vault requests = %d, want only the challenge", r)
	}
}

// BenchmarkFetch100 measures resolving 100 mappings against a fake vault
// with 50 ms latency per request and a 50 ms token, with --concurrency 64.
// The figures to compare: x-one-round-trip is ns/op over one request's round
// trip (challenge + token + GET = 150 ms), at most 3 by the target;
// requests/op is N+1 = 101; peak-concurrency reaches 64 and never exceeds it.
func BenchmarkFetch100(b *testing.B) {
	const n, latency = 100, 50 * time.Millisecond
	var requests, peak int
	for b.Loop() {
		b.StopTimer()
		srv, kv, url := wireVault(b, &countingCred{latency: latency}, 64)
		for i := range n {
			srv.Set(vaulttest.DefaultVault, fmt.Sprintf("secret-%d", i), "v")
		}
		srv.SetLatency(latency)
		p := wirePlan(b, url, n)
		b.StartTimer()
		if _, err := Fetch(context.Background(), p, kv, time.Now()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		st := srv.Stats()
		requests, peak = st.Requests, st.PeakInFlight
		b.StartTimer()
	}
	b.ReportMetric(float64(requests), "requests/op")
	b.ReportMetric(float64(peak), "peak-concurrency")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/float64(3*latency.Milliseconds()), "x-one-round-trip")
}
