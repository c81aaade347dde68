package azuretest

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
)

const workspaceType = "Microsoft.MachineLearningServices/workspaces"

type workspace struct {
	sub, rg, name string // as given
	vaultID       string
	denied        bool
}

func (w *workspace) id() string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s", w.sub, w.rg, workspaceType, w.name)
}

func workspaceKey(sub, rg, name string) string {
	return strings.ToLower(sub + "/" + rg + "/" + name)
}

// AddWorkspace registers an Azure ML workspace whose default Key Vault is
// vault: a vault name (then the vault's ARM id is in the same subscription
// and resource group) or a full ARM id starting with "/".
func (a *Azure) AddWorkspace(sub, rg, name, vault string) {
	id := vault
	if !strings.HasPrefix(vault, "/") {
		id = fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/%s", sub, rg, vault)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	k := workspaceKey(sub, rg, name)
	ws := &workspace{sub: sub, rg: rg, name: name, vaultID: id}
	if old := a.workspaces[k]; old != nil {
		ws.denied = old.denied
	}
	a.workspaces[k] = ws
}

// DenyWorkspace makes reading the workspace fail with 403 AuthorizationFailed,
// as when the caller has no role on it. It holds whether the workspace is
// added before or after.
func (a *Azure) DenyWorkspace(sub, rg, name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := workspaceKey(sub, rg, name)
	if a.workspaces[k] == nil {
		a.workspaces[k] = &workspace{sub: sub, rg: rg, name: name}
	}
	a.workspaces[k].denied = true
}

// FailARMRequests makes the next n authenticated ARM requests fail with
// status; n < 0 fails all of them, n == 0 stops failing.
func (a *Azure) FailARMRequests(n, status int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.armFail = failures{n, status}
}

// serveARM answers GET of an Azure ML workspace.
func (a *Azure) serveARM(w http.ResponseWriter, r *http.Request, c cloud) {
	w.Header().Set("x-ms-request-id", newGUID())
	w.Header().Set("x-ms-correlation-request-id", newGUID())
	token, hasToken := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	t, valid := a.lookup(token)
	valid = valid && hasToken && strings.EqualFold(t.Tenant, a.tenant) &&
		(t.Audience == c.armAudience || t.Audience == "https://"+c.arm)
	switch {
	case !hasToken || token == "":
		w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="https://`+c.login+`/", error="invalid_token", error_description="The authentication failed because of missing 'Authorization' header."`)
		armError(w, http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
		return
	case !valid:
		w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="https://`+c.login+`/", error="invalid_token", error_description="The access token is invalid."`)
		armError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is invalid.")
		return
	}
	a.mu.Lock()
	status, failing := a.armFail.take()
	a.mu.Unlock()
	if failing {
		armError(w, status, strings.ReplaceAll(http.StatusText(status), " ", ""), "The server encountered an internal error. Please retry the request.")
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		armError(w, http.StatusBadRequest, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
		return
	}
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segs) != 8 || !strings.EqualFold(segs[0], "subscriptions") || !strings.EqualFold(segs[2], "resourceGroups") ||
		!strings.EqualFold(segs[4], "providers") || !strings.EqualFold(segs[5]+"/"+segs[6], workspaceType) {
		armError(w, http.StatusNotFound, "NotFound", "azuretest fakes only Azure ML workspaces; no resource at "+r.URL.Path+".")
		return
	}
	if r.Method != http.MethodGet {
		armError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The requested method "+r.Method+" is not allowed.")
		return
	}
	sub, rg, name := segs[1], segs[3], segs[7]
	a.mu.Lock()
	ws := a.workspaces[workspaceKey(sub, rg, name)]
	var copied workspace
	if ws != nil {
		copied = *ws
	}
	a.mu.Unlock()
	switch {
	case ws == nil:
		armError(w, http.StatusNotFound, "ResourceNotFound", fmt.Sprintf("The Resource '%s/%s' under resource group '%s' was not found. "+
			"For more details please go to https://aka.ms/ARMResourceNotFoundFix", workspaceType, name, rg))
	case copied.denied:
		scope := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s", sub, rg, workspaceType, name)
		client := t.ClientID
		if client == "" { // a system-assigned identity is named by its object id
			client = objectID(t)
		}
		armError(w, http.StatusForbidden, "AuthorizationFailed", fmt.Sprintf("The client '%s' with object id '%s' does not have authorization to perform action "+
			"'%s/read' over scope '%s' or the scope is invalid. If access was recently granted, please refresh your credentials.",
			client, objectID(t), workspaceType, scope))
	default:
		writeJSON(w, http.StatusOK, workspaceJSON(&copied, a.tenant))
	}
}

// objectID derives a stable service-principal object id from a token's
// tenant and client.
func objectID(t Token) string {
	b := sha256.Sum256([]byte(t.Tenant + "/" + t.ClientID))
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// workspaceJSON renders a workspace as ARM does (a realistic subset).
func workspaceJSON(ws *workspace, tenant string) map[string]any {
	id := ws.id()
	rgID := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s", ws.sub, ws.rg)
	ident := workspaceKey(ws.sub, ws.rg, ws.name)
	return map[string]any{
		"id":       id,
		"name":     ws.name,
		"type":     workspaceType,
		"location": "westeurope",
		"kind":     "Default",
		"sku":      map[string]string{"name": "Basic", "tier": "Basic"},
		"identity": map[string]string{"type": "SystemAssigned", "principalId": objectID(Token{Tenant: tenant, ClientID: ident}), "tenantId": tenant},
		"properties": map[string]any{
			"friendlyName":        ws.name,
			"keyVault":            ws.vaultID,
			"storageAccount":      rgID + "/providers/Microsoft.Storage/storageAccounts/" + strings.ToLower(ws.name) + "storage",
			"applicationInsights": rgID + "/providers/Microsoft.Insights/components/" + strings.ToLower(ws.name) + "insights",
			"discoveryUrl":        "https://westeurope.api.azureml.ms/discovery",
			"mlFlowTrackingUri":   "azureml://westeurope.api.azureml.ms/mlflow/v1.0" + id,
			"workspaceId":         objectID(Token{Tenant: "workspace", ClientID: ident}),
			"provisioningState":   "Succeeded",
			"publicNetworkAccess": "Enabled",
			"hbiWorkspace":        false,
		},
	}
}

func armError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}
