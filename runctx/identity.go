package runctx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// IdentityKind is the kind of identity runsecrets authenticates as.
type IdentityKind string

// The identity kinds, as `context --json` spells them.
const (
	// IdentityAzureML is the managed identity of Azure ML compute, reached
	// through MSI_ENDPOINT with MSI_SECRET.
	IdentityAzureML IdentityKind = "azureml-managed-identity"
	// IdentityManaged is a user-assigned managed identity chosen with --client-id.
	IdentityManaged IdentityKind = "managed-identity"
	// IdentityDefault is azidentity's DefaultAzureCredential chain.
	IdentityDefault IdentityKind = "default"
)

// Identity is who reads the secrets and the workspace.
type Identity struct {
	Kind     IdentityKind `json:"kind"`
	ClientID string       `json:"client_id,omitempty"`
	// Tries names what will be tried, in order, for messages.
	Tries string `json:"-"`
}

// CredentialVars are the variables a credential of runsecrets can
// authenticate with; --scrub-credentials removes them from the child.
var CredentialVars = []string{
	"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD",
	"AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE",
	"MSI_SECRET", "IDENTITY_HEADER",
}

func identityFor(in Inputs, sources map[string]string) Identity {
	if in.env("MSI_ENDPOINT") != "" && in.env("MSI_SECRET") != "" {
		id := Identity{Kind: IdentityAzureML}
		sources[FactIdentity] = "MSI_ENDPOINT, MSI_SECRET"
		switch {
		case in.ClientID.Value != "":
			id.ClientID = in.ClientID.Value
			sources[FactClientID] = in.ClientID.From
		case in.env("DEFAULT_IDENTITY_CLIENT_ID") != "":
			id.ClientID = in.env("DEFAULT_IDENTITY_CLIENT_ID")
			sources[FactClientID] = "DEFAULT_IDENTITY_CLIENT_ID"
		}
		id.Tries = "the Azure ML compute's managed identity"
		if id.ClientID != "" {
			id.Tries += " (client id " + id.ClientID + ")"
		}
		return id
	}
	if in.ClientID.Value != "" {
		sources[FactIdentity] = in.ClientID.From
		sources[FactClientID] = in.ClientID.From
		return Identity{Kind: IdentityManaged, ClientID: in.ClientID.Value,
			Tries: "the managed identity with client id " + in.ClientID.Value}
	}
	sources[FactIdentity] = "default"
	id := Identity{Kind: IdentityDefault, ClientID: in.env("AZURE_CLIENT_ID")}
	if id.ClientID != "" {
		sources[FactClientID] = "AZURE_CLIENT_ID"
	}
	var first string
	switch {
	case in.env("AZURE_TENANT_ID") != "" && id.ClientID != "" && in.env("AZURE_CLIENT_SECRET") != "":
		first = "a service principal with a client secret (AZURE_CLIENT_SECRET)"
	case in.env("AZURE_TENANT_ID") != "" && id.ClientID != "" && in.env("AZURE_CLIENT_CERTIFICATE_PATH") != "":
		first = "a service principal with a certificate (AZURE_CLIENT_CERTIFICATE_PATH)"
	case in.env("AZURE_FEDERATED_TOKEN_FILE") != "":
		first = "workload identity (AZURE_FEDERATED_TOKEN_FILE)"
	}
	chain := "environment, workload identity, managed identity, Azure CLI, Azure Developer CLI, Azure PowerShell"
	switch atc := in.env("AZURE_TOKEN_CREDENTIALS"); {
	case atc == "dev":
		chain = "Azure CLI, Azure Developer CLI, Azure PowerShell"
	case atc == "prod":
		chain = "environment, workload identity, managed identity"
	case atc != "":
		chain = atc
	}
	id.Tries = "DefaultAzureCredential (" + chain + ")"
	if first != "" {
		id.Tries = "DefaultAzureCredential, " + first + " first"
	}
	return id
}

// NewCredential makes the one credential that serves ARM and every vault.
// Its errors are *Error values that say which identity failed and what to
// do; resolve and DiscoverVault pass them through.
func (c *Context) NewCredential(opts azcore.ClientOptions) (azcore.TokenCredential, error) {
	opts.Cloud = c.Cloud.Config
	// A few quick retries inside the credential; the callers retry an
	// unavailable identity until --timeout, and can then say why it failed.
	opts.Retry = policy.RetryOptions{MaxRetries: 2, RetryDelay: 250 * time.Millisecond, MaxRetryDelay: 2 * time.Second}
	var (
		inner azcore.TokenCredential
		err   error
	)
	switch c.Identity.Kind {
	case IdentityAzureML, IdentityManaged:
		o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		if c.Identity.ClientID != "" {
			o.ID = azidentity.ClientID(c.Identity.ClientID)
		}
		inner, err = azidentity.NewManagedIdentityCredential(o)
	default:
		inner, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: opts})
	}
	if err != nil {
		return nil, &Error{Class: ClassDenied, Msg: "cannot set up the identity: " + firstLine(err.Error()), Err: err,
			Hints: []string{"check the AZURE_* variables"}}
	}
	return &credential{inner: inner, identity: c.Identity}, nil
}

type credential struct {
	inner    azcore.TokenCredential
	identity Identity
}

func (c *credential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.inner.GetToken(ctx, opts)
	if err != nil {
		return tok, c.classify(ctx, err, opts)
	}
	return tok, nil
}

// otherTenant finds the tenant azidentity refused to get a token for.
func otherTenant(msg string) (string, bool) {
	m := regexp.MustCompile(`tokens for tenant "?([0-9A-Za-z.-]+)`).FindStringSubmatch(msg)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// classify turns an azidentity error into an *Error naming the identity.
func (c *credential) classify(ctx context.Context, err error, opts policy.TokenRequestOptions) error {
	who := c.identity.Tries
	var af *azidentity.AuthenticationFailedError
	tenant, crossTenant := otherTenant(err.Error())
	switch {
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		return &Error{Class: ClassUnavailable, Err: err, Msg: "the timeout ran out while getting a token from " + who,
			Hints: []string{"raise --timeout; if the identity endpoint is slow, check the compute's managed identity"}}
	case crossTenant:
		return &Error{Class: ClassDenied, Err: err,
			Msg: fmt.Sprintf("the vault is in tenant %s, and the identity may not get tokens there (tried %s)", tenant, who),
			Hints: []string{"set AZURE_ADDITIONALLY_ALLOWED_TENANTS=" + tenant + " if the identity may sign in there",
				"or use an identity of that tenant (AZURE_TENANT_ID)"}}
	case errors.As(err, &af):
		r := af.RawResponse
		if r == nil || r.StatusCode >= 500 || r.StatusCode == http.StatusTooManyRequests {
			status := "did not answer"
			if r != nil {
				status = fmt.Sprintf("answered %d", r.StatusCode)
			}
			return &Error{Class: ClassUnavailable, Err: err, Msg: fmt.Sprintf("the identity service %s for %s", status, who),
				Hints: []string{"retry later; on Azure ML, check that the compute has a managed identity"}}
		}
		if typ, _, _ := strings.Cut(err.Error(), " "); strings.HasSuffix(typ, "Credential") && c.identity.Kind == IdentityDefault {
			who = "DefaultAzureCredential's " + typ
		}
		return &Error{Class: ClassDenied, Err: err,
			Msg:   fmt.Sprintf("%s was refused a token for %s: %s", who, strings.Join(opts.Scopes, " "), stsReason(r)),
			Hints: []string{identityHint(c.identity)}}
	}
	return &Error{Class: ClassDenied, Err: err, Msg: "no identity could get a token; tried " + who,
		Hints: []string{identityHint(c.identity)}}
}

func identityHint(id Identity) string {
	switch id.Kind {
	case IdentityAzureML:
		return "assign a managed identity to the compute (or the job), and give its client id with --client-id if it is user-assigned"
	case IdentityManaged:
		return "check that the managed identity with this client id is assigned to this machine"
	}
	return "sign in with `az login`, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or run where a managed identity is assigned"
}

// stsReason extracts the identity service's short reason (an AADSTS code and
// its first sentence) from an error answer.
func stsReason(r *http.Response) string {
	body, err := runtime.Payload(r)
	if err != nil || len(body) == 0 {
		return fmt.Sprintf("HTTP %d", r.StatusCode)
	}
	var e struct {
		Error       any    `json:"error"`
		Description string `json:"error_description"`
		Message     string `json:"message"`
	}
	if json.Unmarshal(body, &e) != nil {
		return fmt.Sprintf("HTTP %d", r.StatusCode)
	}
	d := e.Description
	if d == "" {
		d = e.Message
	}
	d = firstLine(d)
	for _, cut := range []string{"Trace ID:", "Correlation ID:", "Timestamp:"} {
		d, _, _ = strings.Cut(d, cut)
	}
	d = strings.TrimSpace(d)
	if code, ok := e.Error.(string); ok && code != "" {
		if d == "" {
			return code
		}
		return code + ": " + d
	}
	if d == "" {
		return fmt.Sprintf("HTTP %d", r.StatusCode)
	}
	return d
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(s)
}
