package runctx

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const (
	sub   = "00000000-1111-2222-3333-444444444444"
	wsID  = "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.MachineLearningServices/workspaces/ws1"
	wsCfg = `{"subscription_id": "` + sub + `", "resource_group": "rg1", "workspace_name": "ws1"}`
)

var ws1 = &Workspace{sub, "rg1", "ws1"}

func inputs(env map[string]string, files fstest.MapFS, wd string) Inputs {
	if files == nil {
		files = fstest.MapFS{}
	}
	return Inputs{
		Lookup:  func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		FS:      files,
		WorkDir: wd,
	}
}

func TestDetect(t *testing.T) {
	t.Parallel()
	type want struct {
		Kind      Kind
		File      string
		Workspace *Workspace
		VaultURL  string
		Cloud     string
		Identity  Identity
		Sources   map[string]string
	}
	def := Identity{Kind: IdentityDefault}
	tests := []struct {
		name string
		in   func() Inputs
		want want
	}{
		{"local file wins over everything", func() Inputs {
			in := inputs(map[string]string{"AZUREML_WORKSPACE_SCOPE": wsID}, nil, ".")
			in.SecretsFile = Setting{"s.env", "RUNSECRETS_SECRETS_FILE"}
			in.VaultURL = Setting{"https://kv1.vault.azure.net", "--vault-url"}
			return in
		}, want{Kind: KindLocalFile, File: "s.env", Cloud: "AzurePublic",
			Sources: map[string]string{"kind": "RUNSECRETS_SECRETS_FILE", "secrets_file": "RUNSECRETS_SECRETS_FILE", "cloud": "default"}}},
		{"explicit vault wins over azure ml", func() Inputs {
			in := inputs(map[string]string{"AZUREML_WORKSPACE_SCOPE": wsID}, nil, ".")
			in.VaultURL = Setting{"https://KV1.vault.azure.net/", "AZURE_KEYVAULT_URL"}
			return in
		}, want{Kind: KindVault, VaultURL: "https://kv1.vault.azure.net", Cloud: "AzurePublic", Identity: def,
			Sources: map[string]string{"kind": "AZURE_KEYVAULT_URL", "vault_url": "AZURE_KEYVAULT_URL", "cloud": "default", "identity": "default"}}},
		{"explicit china vault picks the cloud", func() Inputs {
			in := inputs(nil, nil, ".")
			in.VaultURL = Setting{"https://kv1.vault.azure.cn", "--vault-url"}
			return in
		}, want{Kind: KindVault, VaultURL: "https://kv1.vault.azure.cn", Cloud: "AzureChina", Identity: def,
			Sources: map[string]string{"kind": "--vault-url", "vault_url": "--vault-url", "cloud": "the vault URL's DNS suffix", "identity": "default"}}},
		{"azure ml arm variables", func() Inputs {
			return inputs(map[string]string{"AZUREML_ARM_SUBSCRIPTION": sub, "AZUREML_ARM_RESOURCEGROUP": "rg1", "AZUREML_ARM_WORKSPACE_NAME": "ws1",
				"AZUREML_WORKSPACE_SCOPE": "/subscriptions/x/resourceGroups/other/providers/Microsoft.MachineLearningServices/workspaces/other",
				"MSI_ENDPOINT":            "http://127.0.0.1:1/msi", "MSI_SECRET": "s", "DEFAULT_IDENTITY_CLIENT_ID": "cid"}, nil, ".")
		}, want{Kind: KindAzureMLJob, Workspace: ws1, Cloud: "AzurePublic", Identity: Identity{Kind: IdentityAzureML, ClientID: "cid"},
			Sources: map[string]string{"kind": armVars, "workspace": armVars, "cloud": "default", "identity": "MSI_ENDPOINT, MSI_SECRET", "client_id": "DEFAULT_IDENTITY_CLIENT_ID"}}},
		{"azure ml partial arm variables fall to scope", func() Inputs {
			return inputs(map[string]string{"AZUREML_ARM_SUBSCRIPTION": "x", "AZUREML_WORKSPACE_SCOPE": wsID}, nil, ".")
		}, want{Kind: KindAzureMLJob, Workspace: ws1, Cloud: "AzurePublic", Identity: def,
			Sources: map[string]string{"kind": "AZUREML_WORKSPACE_SCOPE", "workspace": "AZUREML_WORKSPACE_SCOPE", "cloud": "default", "identity": "default"}}},
		{"azure ml mlflow uri", func() Inputs {
			return inputs(map[string]string{"MLFLOW_TRACKING_URI": "azureml://westeurope.api.azureml.ms/mlflow/v1.0" + wsID}, nil, ".")
		}, want{Kind: KindAzureMLJob, Workspace: ws1, Cloud: "AzurePublic", Identity: def,
			Sources: map[string]string{"kind": "MLFLOW_TRACKING_URI", "workspace": "MLFLOW_TRACKING_URI", "cloud": "default", "identity": "default"}}},
		{"mlflow uri that is not azureml is ignored", func() Inputs {
			return inputs(map[string]string{"MLFLOW_TRACKING_URI": "http://localhost:5000"}, fstest.MapFS{"config.json": {Data: []byte(wsCfg)}}, ".")
		}, want{Kind: KindWorkspaceConfig, Workspace: ws1, Cloud: "AzurePublic", Identity: def,
			Sources: map[string]string{"kind": "/config.json", "workspace": "/config.json", "cloud": "default", "identity": "default"}}},
		{"azure ml client id flag wins", func() Inputs {
			in := inputs(map[string]string{"AZUREML_WORKSPACE_SCOPE": wsID, "MSI_ENDPOINT": "e", "MSI_SECRET": "s", "DEFAULT_IDENTITY_CLIENT_ID": "cid"}, nil, ".")
			in.ClientID = Setting{"mine", "--client-id"}
			return in
		}, want{Kind: KindAzureMLJob, Workspace: ws1, Cloud: "AzurePublic", Identity: Identity{Kind: IdentityAzureML, ClientID: "mine"},
			Sources: map[string]string{"kind": "AZUREML_WORKSPACE_SCOPE", "workspace": "AZUREML_WORKSPACE_SCOPE", "cloud": "default", "identity": "MSI_ENDPOINT, MSI_SECRET", "client_id": "--client-id"}}},
		{"msi endpoint alone is not azure ml", func() Inputs {
			return inputs(map[string]string{"AZUREML_WORKSPACE_SCOPE": wsID, "MSI_ENDPOINT": "e"}, nil, ".")
		}, want{Kind: KindAzureMLJob, Workspace: ws1, Cloud: "AzurePublic", Identity: def,
			Sources: map[string]string{"kind": "AZUREML_WORKSPACE_SCOPE", "workspace": "AZUREML_WORKSPACE_SCOPE", "cloud": "default", "identity": "default"}}},
		{"config two directories up", func() Inputs {
			return inputs(nil, fstest.MapFS{"home/me/.azureml/config.json": {Data: []byte(wsCfg)}}, "home/me/proj/src")
		}, want{Kind: KindWorkspaceConfig, Workspace: ws1, Cloud: "AzurePublic", Identity: def,
			Sources: map[string]string{"kind": "/home/me/.azureml/config.json", "workspace": "/home/me/.azureml/config.json", "cloud": "default", "identity": "default"}}},
		{"nearest directory wins, then the name order", func() Inputs {
			return inputs(nil, fstest.MapFS{
				"home/me/.azureml/config.json":        {Data: []byte(`{"Scope": "/subscriptions/a/resourceGroups/b/providers/Microsoft.MachineLearningServices/workspaces/far"}`)},
				"home/me/proj/project.json":           {Data: []byte(`{"Scope": "/subscriptions/a/resourceGroups/b/providers/Microsoft.MachineLearningServices/workspaces/late"}`)},
				"home/me/proj/aml_config/config.json": {Data: []byte(wsCfg)},
			}, "home/me/proj")
		}, want{Kind: KindWorkspaceConfig, Workspace: ws1, Cloud: "AzurePublic", Identity: def,
			Sources: map[string]string{"kind": "/home/me/proj/aml_config/config.json", "workspace": "/home/me/proj/aml_config/config.json", "cloud": "default", "identity": "default"}}},
		{"scope form", func() Inputs {
			return inputs(nil, fstest.MapFS{"project.json": {Data: []byte(`{"Scope": "` + wsID + `"}`)}}, "a/b")
		}, want{Kind: KindWorkspaceConfig, Workspace: ws1, Cloud: "AzurePublic", Identity: def,
			Sources: map[string]string{"kind": "/project.json", "workspace": "/project.json", "cloud": "default", "identity": "default"}}},
		{"explicit config path relative to workdir", func() Inputs {
			in := inputs(map[string]string{"AZURE_CLIENT_ID": "sp", "AZURE_TENANT_ID": "t", "AZURE_CLIENT_SECRET": "x"},
				fstest.MapFS{"w/conf/ws.json": {Data: []byte(wsCfg)}, "w/config.json": {Data: []byte("{}")}}, "w")
			in.WorkspaceConfig = Setting{"conf/ws.json", "--workspace-config"}
			in.Cloud = Setting{"azureusgovernment", "AZURE_CLOUD"}
			return in
		}, want{Kind: KindWorkspaceConfig, Workspace: ws1, Cloud: "AzureUSGovernment", Identity: Identity{Kind: IdentityDefault, ClientID: "sp"},
			Sources: map[string]string{"kind": "conf/ws.json", "workspace": "conf/ws.json", "cloud": "AZURE_CLOUD", "identity": "default", "client_id": "AZURE_CLIENT_ID"}}},
		{"client id flag without azure ml means managed identity", func() Inputs {
			in := inputs(nil, nil, ".")
			in.VaultURL = Setting{"https://kv1.vault.azure.net", "--vault-url"}
			in.ClientID = Setting{"uami", "RUNSECRETS_CLIENT_ID"}
			return in
		}, want{Kind: KindVault, VaultURL: "https://kv1.vault.azure.net", Cloud: "AzurePublic", Identity: Identity{Kind: IdentityManaged, ClientID: "uami"},
			Sources: map[string]string{"kind": "--vault-url", "vault_url": "--vault-url", "cloud": "default", "identity": "RUNSECRETS_CLIENT_ID", "client_id": "RUNSECRETS_CLIENT_ID"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Detect(tt.in())
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			got := want{c.Kind, c.SecretsFile, c.Workspace, c.VaultURL, c.Cloud.Name, c.Identity, c.Sources}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Identity{}, "Tries")); diff != "" {
				t.Errorf("Detect (-want +got):\n%s", diff)
			}
			if c.Kind != KindLocalFile && c.Identity.Tries == "" {
				t.Errorf("identity %+v does not say what it tries", c.Identity)
			}
		})
	}
}

const armVars = "AZUREML_ARM_SUBSCRIPTION, AZUREML_ARM_RESOURCEGROUP, AZUREML_ARM_WORKSPACE_NAME"

func TestDetectErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    func() Inputs
		class Class
		msg   string // substring of the message
		hint  string // substring of the hints
	}{
		{"nothing found lists every place", func() Inputs { return inputs(nil, nil, "home/me") }, ClassConfig,
			"no run context", "--secrets-file"},
		{"nothing found names the search", func() Inputs { return inputs(nil, nil, "home/me") }, ClassConfig,
			"no run context", "from /home/me up to /"},
		{"bad scope", func() Inputs {
			return inputs(map[string]string{"AZUREML_WORKSPACE_SCOPE": "/subscriptions/x/resourceGroups/y"}, nil, ".")
		}, ClassConfig, "AZUREML_WORKSPACE_SCOPE is not a workspace resource id", "--vault-url"},
		{"scope of another resource type", func() Inputs {
			return inputs(map[string]string{"AZUREML_WORKSPACE_SCOPE": "/subscriptions/x/resourceGroups/y/providers/Microsoft.KeyVault/vaults/z"}, nil, ".")
		}, ClassConfig, "not a Microsoft.MachineLearningServices/workspaces", ""},
		{"azureml uri without workspace", func() Inputs {
			return inputs(map[string]string{"MLFLOW_TRACKING_URI": "azureml://westeurope.api.azureml.ms/history/v1.0"}, nil, ".")
		}, ClassConfig, "MLFLOW_TRACKING_URI is an azureml:// URI without a workspace", "azureml://REGION"},
		{"config missing key", func() Inputs {
			return inputs(nil, fstest.MapFS{"p/config.json": {Data: []byte(`{"subscription_id": "s", "workspace_name": "w"}`)}}, "p")
		}, ClassConfig, "workspace config /p/config.json has no resource_group", "Scope"},
		{"config invalid json", func() Inputs {
			return inputs(nil, fstest.MapFS{".azureml/config.json": {Data: []byte("{\n  \"subscription_id\": \n}")}}, ".")
		}, ClassConfig, "/.azureml/config.json is not valid JSON: line 3", "download config.json"},
		{"config bad scope", func() Inputs {
			return inputs(nil, fstest.MapFS{"config.json": {Data: []byte(`{"Scope": "nope"}`)}}, ".")
		}, ClassConfig, "Scope:", ""},
		{"explicit config missing", func() Inputs {
			in := inputs(nil, nil, ".")
			in.WorkspaceConfig = Setting{"/nowhere/config.json", "--workspace-config"}
			return in
		}, ClassConfig, "cannot read workspace config /nowhere/config.json (--workspace-config)", "portal"},
		{"bad vault url", func() Inputs {
			in := inputs(nil, nil, ".")
			in.VaultURL = Setting{"https://example.com", "RUNSECRETS_VAULT_URL"}
			return in
		}, ClassUsage, "RUNSECRETS_VAULT_URL: \"https://example.com\" is not a Key Vault URL", "https://NAME.vault.azure.net"},
		{"vault url with path", func() Inputs {
			in := inputs(nil, nil, ".")
			in.VaultURL = Setting{"https://kv1.vault.azure.net/secrets/x", "--vault-url"}
			return in
		}, ClassUsage, "has a path", ""},
		{"unknown cloud", func() Inputs {
			in := inputs(nil, nil, ".")
			in.Cloud = Setting{"Mars", "AZURE_CLOUD"}
			return in
		}, ClassUsage, `unknown cloud "Mars" (AZURE_CLOUD)`, "AzureChina"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Detect(tt.in())
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Detect = %v, want *Error", err)
			}
			if e.Class != tt.class {
				t.Errorf("class = %v, want %v", e.Class, tt.class)
			}
			if !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("message %q lacks %q", e.Msg, tt.msg)
			}
			if !strings.Contains(e.Hint(), tt.hint) {
				t.Errorf("hints %q lack %q", e.Hint(), tt.hint)
			}
		})
	}
}
