package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/runsecrets/runsecrets/resolve"
	"github.com/runsecrets/runsecrets/runctx"
)

// contextFlags say where runsecrets runs. They are global flags (given
// before or after the command's name), defined once for every command.
type contextFlags struct {
	SecretsFile     string `env:"RUNSECRETS_SECRETS_FILE" placeholder:"FILE" help:"Serve secrets from this local dotenv file (DB_PASS=... serves db-pass), fully offline."`
	VaultURL        string `env:"RUNSECRETS_VAULT_URL,AZURE_KEYVAULT_URL" placeholder:"URL" help:"The Key Vault to read, https://NAME.vault.azure.net. Skips workspace discovery."`
	WorkspaceConfig string `placeholder:"FILE" help:"An Azure ML workspace config.json; by default searched from the working directory up."`
	Cloud           string `env:"AZURE_CLOUD" default:"AzurePublic" placeholder:"NAME" help:"Azure cloud: AzurePublic, AzureChina or AzureUSGovernment."`
	ClientID        string `env:"RUNSECRETS_CLIENT_ID" placeholder:"ID" help:"Client id of the user-assigned managed identity to use (on Azure ML, DEFAULT_IDENTITY_CLIENT_ID by default)."`
}

// setting returns a flag's value with where it came from: the flag on the
// command line, the first of its variables that is set, or its default.
func (a *app) setting(flag string, value string) runctx.Setting {
	if value == "" {
		return runctx.Setting{}
	}
	for _, p := range a.kctx.Path {
		if p.Flag != nil && p.Flag.Name == flag && !p.Resolved {
			return runctx.Setting{Value: value, From: "--" + flag}
		}
	}
	for _, f := range a.kctx.Flags() {
		if f.Name != flag {
			continue
		}
		for _, env := range f.Envs {
			if v, ok := a.lookup(env); ok && v != "" {
				return runctx.Setting{Value: value, From: env}
			}
		}
	}
	return runctx.Setting{Value: value, From: "default"}
}

// detect resolves the run context from the flags and the environment.
func (a *app) detect() (*runctx.Context, error) {
	f := a.where
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("cannot read the working directory: %w", err)
	}
	vol := filepath.VolumeName(wd)
	root := os.DirFS(vol + string(filepath.Separator))
	rel := func(p string) string {
		return filepath.ToSlash(strings.TrimPrefix(p[len(vol):], string(filepath.Separator)))
	}
	wsConfig := a.setting("workspace-config", f.WorkspaceConfig)
	if wsConfig.Value != "" {
		if abs, err := filepath.Abs(wsConfig.Value); err == nil {
			wsConfig.Value = "/" + rel(abs)
		}
	}
	return runctx.Detect(runctx.Inputs{
		SecretsFile:     a.setting("secrets-file", f.SecretsFile),
		VaultURL:        a.setting("vault-url", f.VaultURL),
		WorkspaceConfig: wsConfig,
		Cloud:           a.setting("cloud", f.Cloud),
		ClientID:        a.setting("client-id", f.ClientID),
		Lookup:          a.lookup,
		FS:              root,
		WorkDir:         rel(wd),
	})
}

// transport is the HTTP client of every Azure call: Go's defaults
// (HTTPS_PROXY, NO_PROXY, SSL_CERT_FILE), with enough idle connections per
// host for the fetch concurrency.
func transport(concurrency int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = max(concurrency, 2)
	t.ForceAttemptHTTP2 = true
	return &http.Client{Transport: t}
}

// azureOptions are the azcore options of every client and credential.
func azureOptions(concurrency int) azcore.ClientOptions {
	return azcore.ClientOptions{
		Transport: transport(concurrency),
		Telemetry: policy.TelemetryOptions{ApplicationID: "runsecrets"},
	}
}

// provider opens the secrets provider of a context: the local file, or Key
// Vault with the context's identity (reading the workspace's vault from
// ARM first when needed).
func (a *app) provider(ctx context.Context, rc *runctx.Context, concurrency int) (resolve.Provider, error) {
	if rc.Kind == runctx.KindLocalFile {
		data, err := os.ReadFile(rc.SecretsFile)
		if err != nil {
			return nil, &runctx.Error{Class: runctx.ClassConfig, Err: err,
				Msg:   fmt.Sprintf("cannot read the local secrets file %s (%s): %v", rc.SecretsFile, rc.Sources[runctx.FactSecretsFile], unwrapPath(err)),
				Hints: []string{"create it with lines like DB_PASS=..., or drop --secrets-file / RUNSECRETS_SECRETS_FILE"}}
		}
		return resolve.NewLocalFile(rc.SecretsFile, data, a.log)
	}
	a.watchSignals()
	opts := azureOptions(concurrency)
	cred, err := rc.NewCredential(opts)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := rc.DiscoverVault(ctx, cred, opts); err != nil {
		return nil, err
	}
	if rc.Workspace != nil {
		a.log.Debug("vault discovered", "workspace", rc.Workspace.Name, "vault", rc.VaultURL, "took", time.Since(start).Round(time.Millisecond))
	}
	opts.Cloud = rc.Cloud.Config
	return resolve.NewKeyVault(cred, resolve.KeyVaultOptions{
		Client:      azsecrets.ClientOptions{ClientOptions: opts},
		Concurrency: concurrency,
		Log:         a.log,
	}), nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

type contextCmd struct {
	JSON  bool `help:"Print the context as JSON."`
	Check bool `help:"Also get a token for each service the context needs, and report success or the exact failure."`
}

// contextJSON is the stable shape of `context --json` (SPEC §4).
type contextJSON struct {
	Kind        runctx.Kind       `json:"kind"`
	Workspace   *runctx.Workspace `json:"workspace,omitempty"`
	VaultURL    string            `json:"vault_url,omitempty"`
	SecretsFile string            `json:"secrets_file,omitempty"`
	Cloud       string            `json:"cloud"`
	Identity    *runctx.Identity  `json:"identity,omitempty"`
	Sources     map[string]string `json:"sources"`
	Checks      []checkJSON       `json:"checks,omitempty"`
}

type checkJSON struct {
	Audience string `json:"audience"`
	OK       bool   `json:"ok"`
	Error    string `json:"error,omitempty"`
}

func (c *contextCmd) Run(ctx context.Context, a *app) error {
	rc, err := a.detect()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	out := contextJSON{Kind: rc.Kind, Workspace: rc.Workspace, SecretsFile: rc.SecretsFile, Cloud: rc.Cloud.Name, Sources: rc.Sources}
	var failed error
	if rc.Kind != runctx.KindLocalFile {
		out.Identity = &rc.Identity
		a.watchSignals()
		opts := azureOptions(4)
		cred, err := rc.NewCredential(opts)
		if err != nil {
			return err
		}
		if err := rc.DiscoverVault(ctx, cred, opts); err != nil {
			return err
		}
		if c.Check {
			for _, aud := range []string{rc.Cloud.Config.Services["resourceManager"].Audience, vaultAudience(rc)} {
				if aud == "" {
					continue
				}
				chk := checkJSON{Audience: aud, OK: true}
				if _, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{strings.TrimSuffix(aud, "/") + "/.default"}}); err != nil {
					chk.OK, chk.Error, failed = false, oneLine(err.Error()), err
				}
				out.Checks = append(out.Checks, chk)
			}
		}
	}
	out.VaultURL = rc.VaultURL
	if c.JSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
		return failed
	}
	printContext(a, out, rc)
	return failed
}

// vaultAudience is the token audience of the context's vault cloud.
func vaultAudience(rc *runctx.Context) string {
	return "https://vault" + strings.TrimPrefix(rc.Cloud.VaultSuffix, ".vault")
}

func printContext(a *app, out contextJSON, rc *runctx.Context) {
	w := a.stdout
	line := func(k, v, fact string) {
		if v == "" {
			return
		}
		if from := out.Sources[fact]; from != "" {
			v += "  (from " + from + ")"
		}
		fmt.Fprintf(w, "%-10s %s\n", k+":", v)
	}
	line("kind", string(out.Kind), runctx.FactKind)
	line("file", out.SecretsFile, runctx.FactSecretsFile)
	if ws := out.Workspace; ws != nil {
		line("workspace", fmt.Sprintf("%s (resource group %s, subscription %s)", ws.Name, ws.ResourceGroup, ws.SubscriptionID), runctx.FactWorkspace)
	}
	line("vault", out.VaultURL, runctx.FactVaultURL)
	if out.Kind != runctx.KindLocalFile {
		line("cloud", out.Cloud, runctx.FactCloud)
		line("identity", rc.Identity.Tries, runctx.FactIdentity)
		line("client id", rc.Identity.ClientID, runctx.FactClientID)
	}
	for _, c := range out.Checks {
		status := "ok"
		if !c.OK {
			status = "FAILED: " + c.Error
		}
		fmt.Fprintf(w, "%-10s %s: %s\n", "token:", c.Audience, status)
	}
}
