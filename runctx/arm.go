package runctx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// WorkspaceAPIVersion is the ARM api-version of the workspace read.
const WorkspaceAPIVersion = "2024-04-01"

// DiscoverVault reads the workspace from Azure Resource Manager with cred
// and sets VaultURL to its default Key Vault (properties.keyVault). It is
// one GET, retried on throttling and 5xx until ctx ends. An explicit vault
// needs no discovery and no Reader role on the workspace.
func (c *Context) DiscoverVault(ctx context.Context, cred azcore.TokenCredential, opts azcore.ClientOptions) error {
	if c.Workspace == nil || c.VaultURL != "" {
		return nil
	}
	ws, from := *c.Workspace, c.Sources[FactWorkspace]
	opts.Cloud = c.Cloud.Config
	// A few quick retries in azcore (throttling, 5xx, resets); the loop below
	// retries further until ctx ends, and so knows the last cause.
	opts.Retry = policy.RetryOptions{MaxRetries: 2, RetryDelay: 250 * time.Millisecond, MaxRetryDelay: 2 * time.Second}
	client, err := arm.NewClient("runsecrets", "v1.0.0", cred, &arm.ClientOptions{ClientOptions: opts, DisableRPRegistration: true})
	if err != nil {
		return &Error{Class: ClassUsage, Msg: "cannot set up Azure Resource Manager: " + err.Error(), Err: err}
	}
	// azcore retries throttling, 5xx and transport faults; a token the
	// identity service could not give is retried here, until ctx ends.
	var resp *http.Response
	var last *Error
	for delay := 500 * time.Millisecond; ; delay = min(2*delay, 8*time.Second) {
		resp, err = getWorkspace(ctx, client, ws)
		if err == nil {
			break
		}
		e := armError(ctx, err, ws, from)
		if ctx.Err() != nil {
			return timedOut(e, last)
		}
		if e.Class != ClassUnavailable {
			return e
		}
		last = e
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return timedOut(armError(ctx, ctx.Err(), ws, from), last)
		}
	}
	var body struct {
		Properties struct {
			KeyVault string `json:"keyVault"`
		} `json:"properties"`
	}
	if err := runtime.UnmarshalAsJSON(resp, &body); err != nil {
		return &Error{Class: ClassUnavailable, Err: err, Msg: fmt.Sprintf("workspace %s: Azure Resource Manager's answer is not valid JSON", ws.Name),
			Hints: []string{"retry later, or give the vault directly with --vault-url"}}
	}
	kv := strings.TrimSpace(body.Properties.KeyVault)
	rid, err := arm.ParseResourceID(kv)
	if kv == "" || err != nil || !strings.EqualFold(rid.ResourceType.String(), "Microsoft.KeyVault/vaults") {
		return &Error{Class: ClassConfig, Msg: fmt.Sprintf("workspace %s has no default Key Vault (properties.keyVault is %q)", ws.Name, kv),
			Hints: []string{"give the vault directly with --vault-url"}}
	}
	c.VaultURL = "https://" + strings.ToLower(rid.Name) + c.Cloud.VaultSuffix
	c.Sources[FactVaultURL] = fmt.Sprintf("the default Key Vault of workspace %s (Azure Resource Manager)", ws.Name)
	return nil
}

func getWorkspace(ctx context.Context, client *arm.Client, ws Workspace) (*http.Response, error) {
	req, err := runtime.NewRequest(ctx, http.MethodGet, runtime.JoinPaths(client.Endpoint(), ws.ID()))
	if err != nil {
		return nil, err
	}
	q := req.Raw().URL.Query()
	q.Set("api-version", WorkspaceAPIVersion)
	req.Raw().URL.RawQuery = q.Encode()
	req.Raw().Header.Set("Accept", "application/json")
	resp, err := client.Pipeline().Do(req)
	if err == nil && !runtime.HasStatusCode(resp, http.StatusOK) {
		err = runtime.NewResponseError(resp)
	}
	return resp, err
}

// timedOut reports the timeout with the last trouble seen before it, which
// says more than the timeout itself.
func timedOut(e, last *Error) *Error {
	if last == nil || last.Msg == e.Msg {
		return e
	}
	return &Error{Class: ClassUnavailable, Err: last.Err, Msg: e.Msg + "; last: " + last.Msg, Hints: last.Hints}
}

func armError(ctx context.Context, err error, ws Workspace, from string) *Error {
	var own *Error
	if errors.As(err, &own) {
		return own
	}
	explicit := "or skip the workspace lookup: give the vault with --vault-url or RUNSECRETS_VAULT_URL"
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusNotFound:
			return &Error{Class: ClassConfig, Err: err,
				Msg:   fmt.Sprintf("workspace %s not found in resource group %s of subscription %s (from %s)", ws.Name, ws.ResourceGroup, ws.SubscriptionID, from),
				Hints: []string{"check the subscription, resource group and workspace names in " + from, explicit}}
		case http.StatusForbidden:
			return &Error{Class: ClassDenied, Err: err,
				Msg:   fmt.Sprintf("the identity may not read workspace %s (%s)", ws.Name, re.ErrorCode),
				Hints: []string{"grant the identity the Reader role on the workspace", explicit}}
		case http.StatusUnauthorized:
			return &Error{Class: ClassDenied, Err: err,
				Msg:   "Azure Resource Manager refused the token (401 " + re.ErrorCode + ")",
				Hints: []string{"check that the identity belongs to the workspace's tenant", explicit}}
		}
		return &Error{Class: ClassUnavailable, Err: err,
			Msg:   fmt.Sprintf("Azure Resource Manager answered %d %s while reading workspace %s", re.StatusCode, http.StatusText(re.StatusCode), ws.Name),
			Hints: []string{"retry later", explicit}}
	}
	if ctx.Err() != nil {
		return &Error{Class: ClassUnavailable, Err: err, Msg: "the timeout ran out while reading workspace " + ws.Name + " from Azure Resource Manager",
			Hints: []string{"raise --timeout", explicit}}
	}
	return &Error{Class: ClassUnavailable, Err: err, Msg: "cannot reach Azure Resource Manager: " + firstLine(err.Error()),
		Hints: []string{"check the network and proxy settings", explicit}}
}
