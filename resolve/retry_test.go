package resolve

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// slowIdentityError is how package runctx's credential reports a token
// request that ran out of time.
type slowIdentityError struct{}

func (slowIdentityError) Error() string {
	return "the timeout ran out while getting a token from the test identity"
}
func (slowIdentityError) Hint() string      { return "check the test identity" }
func (slowIdentityError) Unavailable() bool { return true }

// slowCred answers only when the request's context ends.
type slowCred struct{}

func (slowCred) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	<-ctx.Done()
	return azcore.AccessToken{}, slowIdentityError{}
}

// azcore's retry policy replaces the credential's error with the context's
// when time runs out during a token request; every secret must still be
// reported as waiting for the identity, not for the vault.
func TestKeyVaultTimeoutWhileGettingATokenNamesTheIdentity(t *testing.T) {
	t.Parallel()
	srv, kv, url := wireVault(t, slowCred{}, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := Fetch(ctx, wirePlan(t, url, 3), kv, time.Now())
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Fatalf("Fetch = %v, want 3 failures", err)
	}
	for _, e := range errs {
		var fe *FetchError
		if !errors.As(e, &fe) || fe.Kind() != KindUnavailable || fe.Cause != (slowIdentityError{}).Error() || fe.Hint != "check the test identity" {
			t.Errorf("failure = %#v, want the identity's cause and hint", e)
		}
	}
	if r := srv.Stats().Requests; r != 1 {
		t.Errorf("vault requests = %d, want only the challenge", r)
	}
}

func TestGaveUpCountsAttempts(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	<-ctx.Done()
	last := &Failure{Cause: "the vault answered 503 Service Unavailable", Hint: "retry later", identity: true}
	for n, want := range map[int]string{
		1: "the timeout ran out after 1 attempt; last: the vault answered 503 Service Unavailable",
		3: "the timeout ran out after 3 attempts; last: the vault answered 503 Service Unavailable",
	} {
		f := gaveUp(ctx, last, n)
		if f.Cause != want || f.Hint != "retry later" || !f.identity || f.Kind != KindUnavailable {
			t.Errorf("gaveUp(%d) = %+v, want cause %q, the last hint, identity kept", n, f, want)
		}
	}
	if f := gaveUp(ctx, nil, 0); !strings.Contains(f.Cause, "waiting for the vault") || f.identity {
		t.Errorf("gaveUp without a failure = %+v", f)
	}
}
