package runctx

import (
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
)

// Kind is the kind of run context.
type Kind string

// The kinds of run context, as `context --json` spells them.
const (
	KindLocalFile       Kind = "local-file"
	KindVault           Kind = "vault"
	KindAzureMLJob      Kind = "azureml-job"
	KindWorkspaceConfig Kind = "workspace-config"
)

// Workspace is an Azure ML workspace.
type Workspace struct {
	SubscriptionID string `json:"subscription_id"`
	ResourceGroup  string `json:"resource_group"`
	Name           string `json:"workspace_name"`
}

// ID is the workspace's ARM resource id.
func (w Workspace) ID() string {
	return "/subscriptions/" + w.SubscriptionID + "/resourceGroups/" + w.ResourceGroup +
		"/providers/Microsoft.MachineLearningServices/workspaces/" + w.Name
}

// Setting is a value with the place it came from ("--vault-url",
// "RUNSECRETS_VAULT_URL", "default").
type Setting struct {
	Value string
	From  string
}

// Facts names the facts whose origin a Context records in Sources.
const (
	FactKind        = "kind"
	FactSecretsFile = "secrets_file"
	FactVaultURL    = "vault_url"
	FactWorkspace   = "workspace"
	FactCloud       = "cloud"
	FactIdentity    = "identity"
	FactClientID    = "client_id"
)

// Context is where runsecrets runs.
type Context struct {
	Kind Kind
	// SecretsFile is the local secrets file, for KindLocalFile.
	SecretsFile string
	// Workspace is set for KindAzureMLJob and KindWorkspaceConfig.
	Workspace *Workspace
	// VaultURL is the vault; for a workspace it is empty until
	// DiscoverVault has read it.
	VaultURL string
	Cloud    Cloud
	Identity Identity
	// Sources maps each fact (the Fact… names) to where it came from.
	Sources map[string]string
}

// Inputs are everything Detect reads: settings from flags or their
// variables, the environment, and the file system.
type Inputs struct {
	SecretsFile     Setting
	VaultURL        Setting
	WorkspaceConfig Setting
	Cloud           Setting
	ClientID        Setting
	// Lookup reads the environment.
	Lookup func(string) (string, bool)
	// FS is the file system from its root; WorkDir is the working
	// directory within it, slash-separated and unrooted ("home/me/proj",
	// "." for the root).
	FS      fs.FS
	WorkDir string
}

func (in Inputs) env(name string) string {
	if in.Lookup == nil {
		return ""
	}
	v, _ := in.Lookup(name)
	return strings.TrimSpace(v)
}

// Detect applies the rules of the package comment and returns the context.
// It makes no network call.
func Detect(in Inputs) (*Context, error) {
	cl, err := CloudByName(in.Cloud.Value)
	if err != nil {
		return nil, &Error{Class: ClassUsage, Msg: fmt.Sprintf("unknown cloud %q (%s)", in.Cloud.Value, in.Cloud.From),
			Hints: []string{"use AzurePublic, AzureChina or AzureUSGovernment"}}
	}
	c := &Context{Cloud: cl, Sources: map[string]string{FactCloud: orDefault(in.Cloud.From)}}
	switch {
	case in.SecretsFile.Value != "":
		c.Kind, c.SecretsFile = KindLocalFile, in.SecretsFile.Value
		c.Sources[FactKind] = in.SecretsFile.From
		c.Sources[FactSecretsFile] = in.SecretsFile.From
		return c, nil
	case in.VaultURL.Value != "":
		u, err := VaultURL(in.VaultURL.Value)
		if err != nil {
			return nil, &Error{Class: ClassUsage, Msg: fmt.Sprintf("%s: %v", in.VaultURL.From, err),
				Hints: []string{"give the vault as https://NAME.vault.azure.net"}}
		}
		c.Kind, c.VaultURL = KindVault, u
		c.Sources[FactKind] = in.VaultURL.From
		c.Sources[FactVaultURL] = in.VaultURL.From
		if in.Cloud.From == "" || in.Cloud.From == "default" {
			// The vault's DNS suffix says which cloud it lives in.
			for _, k := range clouds {
				if strings.HasSuffix(u, k.VaultSuffix) && k.Name != c.Cloud.Name {
					c.Cloud = k
					c.Sources[FactCloud] = "the vault URL's DNS suffix"
				}
			}
		}
	default:
		ws, from, err := azureMLJob(in)
		if err != nil {
			return nil, err
		}
		if ws != nil {
			c.Kind, c.Workspace = KindAzureMLJob, ws
		} else {
			ws, from, err = workspaceConfig(in)
			if err != nil {
				return nil, err
			}
			if ws == nil {
				return nil, noContext(in)
			}
			c.Kind, c.Workspace = KindWorkspaceConfig, ws
		}
		c.Sources[FactKind] = from
		c.Sources[FactWorkspace] = from
	}
	c.Identity = identityFor(in, c.Sources)
	return c, nil
}

func orDefault(from string) string {
	if from == "" {
		return "default"
	}
	return from
}

// VaultURL normalises a vault URL: https, a Key Vault DNS suffix, no path.
func VaultURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not a URL", raw)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("%q does not use https", raw)
	}
	host := strings.ToLower(u.Hostname())
	if p := u.Port(); p != "" && p != "443" {
		return "", fmt.Errorf("%q has a port other than 443", raw)
	}
	ok := false
	for _, k := range clouds {
		ok = ok || strings.HasSuffix(host, k.VaultSuffix) && len(host) > len(k.VaultSuffix)
	}
	if !ok {
		return "", fmt.Errorf("%q is not a Key Vault URL (the host ends in .vault.azure.net, .vault.azure.cn or .vault.usgovcloudapi.net)", raw)
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		return "", fmt.Errorf("%q has a path; give only the vault, https://NAME.vault.azure.net", raw)
	}
	return "https://" + host, nil
}

// Cloud is one Azure cloud.
type Cloud struct {
	Name        string
	VaultSuffix string
	Config      cloud.Configuration
}

var clouds = []Cloud{
	{"AzurePublic", ".vault.azure.net", cloud.AzurePublic},
	{"AzureChina", ".vault.azure.cn", cloud.AzureChina},
	{"AzureUSGovernment", ".vault.usgovcloudapi.net", cloud.AzureGovernment},
}

// CloudByName returns a cloud by name (case-insensitive; the Azure CLI's
// AzureCloud and AzureChinaCloud are accepted too); "" is AzurePublic.
func CloudByName(name string) (Cloud, error) {
	if name == "" {
		return clouds[0], nil
	}
	for _, c := range clouds {
		if strings.EqualFold(c.Name, name) {
			return c, nil
		}
	}
	// The names the Azure CLI uses for the same clouds.
	switch strings.ToLower(name) {
	case "azurecloud":
		return clouds[0], nil
	case "azurechinacloud":
		return clouds[1], nil
	}
	return Cloud{}, fmt.Errorf("unknown cloud %q", name)
}

// azureMLJob reads the workspace from an Azure ML job's variables, or
// returns nil when none is set.
func azureMLJob(in Inputs) (*Workspace, string, error) {
	sub, rg, name := in.env("AZUREML_ARM_SUBSCRIPTION"), in.env("AZUREML_ARM_RESOURCEGROUP"), in.env("AZUREML_ARM_WORKSPACE_NAME")
	if sub != "" && rg != "" && name != "" {
		return &Workspace{sub, rg, name}, "AZUREML_ARM_SUBSCRIPTION, AZUREML_ARM_RESOURCEGROUP, AZUREML_ARM_WORKSPACE_NAME", nil
	}
	if scope := in.env("AZUREML_WORKSPACE_SCOPE"); scope != "" {
		ws, err := workspaceFromID(scope)
		if err != nil {
			return nil, "", &Error{Class: ClassConfig, Msg: "AZUREML_WORKSPACE_SCOPE is not a workspace resource id: " + err.Error(),
				Hints: []string{"expected /subscriptions/S/resourceGroups/RG/providers/Microsoft.MachineLearningServices/workspaces/W",
					"or give the vault directly with --vault-url"}}
		}
		return ws, "AZUREML_WORKSPACE_SCOPE", nil
	}
	if uri := in.env("MLFLOW_TRACKING_URI"); strings.HasPrefix(strings.ToLower(uri), "azureml://") {
		u, err := url.Parse(uri)
		var ws *Workspace
		if err == nil {
			_, id, ok := strings.Cut(u.Path, "/mlflow/v1.0")
			if ok {
				ws, err = workspaceFromID(id)
			} else {
				err = fmt.Errorf("the path has no /mlflow/v1.0/")
			}
		}
		if err != nil {
			return nil, "", &Error{Class: ClassConfig, Msg: "MLFLOW_TRACKING_URI is an azureml:// URI without a workspace: " + err.Error(),
				Hints: []string{"expected azureml://REGION.api.azureml.ms/mlflow/v1.0/subscriptions/S/resourceGroups/RG/providers/Microsoft.MachineLearningServices/workspaces/W",
					"or give the vault directly with --vault-url"}}
		}
		return ws, "MLFLOW_TRACKING_URI", nil
	}
	return nil, "", nil
}

// workspaceFromID parses a workspace ARM resource id.
func workspaceFromID(id string) (*Workspace, error) {
	rid, err := arm.ParseResourceID(strings.TrimSpace(id))
	if err != nil {
		return nil, fmt.Errorf("%q cannot be parsed", id)
	}
	if !strings.EqualFold(rid.ResourceType.String(), "Microsoft.MachineLearningServices/workspaces") {
		return nil, fmt.Errorf("%q names a %s, not a Microsoft.MachineLearningServices/workspaces", id, rid.ResourceType.String())
	}
	if rid.SubscriptionID == "" || rid.ResourceGroupName == "" || rid.Name == "" {
		return nil, fmt.Errorf("%q lacks a subscription, resource group or name", id)
	}
	return &Workspace{rid.SubscriptionID, rid.ResourceGroupName, rid.Name}, nil
}

// ConfigNames are the workspace config files searched in each directory, in order.
var ConfigNames = []string{
	".azureml/config.json", ".azureml/project.json",
	"aml_config/config.json", "aml_config/project.json",
	"config.json", "project.json",
}

// workspaceConfig reads --workspace-config, or searches for a config file
// from the working directory up to the root; nil when there is none.
func workspaceConfig(in Inputs) (*Workspace, string, error) {
	if p := in.WorkspaceConfig.Value; p != "" {
		name := fsPath(in.WorkDir, p)
		data, err := fs.ReadFile(in.FS, name)
		if err != nil {
			return nil, "", &Error{Class: ClassConfig, Err: err,
				Msg:   fmt.Sprintf("cannot read workspace config %s (%s): %v", p, in.WorkspaceConfig.From, unwrapPathError(err)),
				Hints: []string{"download config.json from the workspace's page in the Azure portal"}}
		}
		ws, err := parseConfig(p, data)
		return ws, p, err
	}
	for dir := cleanDir(in.WorkDir); ; dir = path.Dir(dir) {
		for _, n := range ConfigNames {
			name := path.Join(dir, n)
			data, err := fs.ReadFile(in.FS, name)
			if err != nil {
				continue
			}
			shown := "/" + name
			ws, err := parseConfig(shown, data)
			return ws, shown, err
		}
		if dir == "." {
			return nil, "", nil
		}
	}
}

func cleanDir(d string) string {
	d = path.Clean(strings.TrimPrefix(d, "/"))
	if d == "" {
		return "."
	}
	return d
}

// fsPath turns a path given by the user into a name in the root file system.
func fsPath(workDir, p string) string {
	if strings.HasPrefix(p, "/") {
		return cleanDir(p)
	}
	return cleanDir(path.Join(cleanDir(workDir), p))
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

func noContext(in Inputs) error {
	return &Error{Class: ClassConfig, Msg: "no run context: runsecrets does not know which vault to read",
		Hints: []string{
			"looked for --secrets-file / RUNSECRETS_SECRETS_FILE: give a local dotenv file to run offline",
			"looked for --vault-url / RUNSECRETS_VAULT_URL / AZURE_KEYVAULT_URL: give the vault, https://NAME.vault.azure.net",
			"looked for AZUREML_ARM_SUBSCRIPTION+AZUREML_ARM_RESOURCEGROUP+AZUREML_ARM_WORKSPACE_NAME, AZUREML_WORKSPACE_SCOPE and an azureml:// MLFLOW_TRACKING_URI: these are set inside Azure ML jobs",
			fmt.Sprintf("looked for %s from /%s up to /: download config.json from the workspace's portal page, or pass --workspace-config",
				strings.Join(ConfigNames, ", "), strings.TrimPrefix(cleanDir(in.WorkDir), ".")),
		}}
}
