package runctx

import (
	"encoding/json"
	"fmt"
	"strings"
)

// parseConfig reads an Azure ML workspace config file: either the keys
// subscription_id, resource_group and workspace_name, or one Scope ARM id.
func parseConfig(shown string, data []byte) (*Workspace, error) {
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, &Error{Class: ClassConfig, Err: err,
			Msg:   fmt.Sprintf("workspace config %s is not valid JSON: %v", shown, jsonWhere(data, err)),
			Hints: []string{"download config.json again from the workspace's page in the Azure portal"}}
	}
	str := func(k string) string {
		for key, v := range raw {
			if strings.EqualFold(key, k) {
				s, _ := v.(string)
				return strings.TrimSpace(s)
			}
		}
		return ""
	}
	if scope := str("Scope"); scope != "" {
		ws, err := workspaceFromID(scope)
		if err != nil {
			return nil, &Error{Class: ClassConfig, Msg: fmt.Sprintf("workspace config %s: Scope: %v", shown, err),
				Hints: []string{"Scope is /subscriptions/S/resourceGroups/RG/providers/Microsoft.MachineLearningServices/workspaces/W"}}
		}
		return ws, nil
	}
	ws := &Workspace{str("subscription_id"), str("resource_group"), str("workspace_name")}
	for _, kv := range [][2]string{{"subscription_id", ws.SubscriptionID}, {"resource_group", ws.ResourceGroup}, {"workspace_name", ws.Name}} {
		if kv[1] == "" {
			return nil, &Error{Class: ClassConfig, Msg: fmt.Sprintf("workspace config %s has no %s", shown, kv[0]),
				Hints: []string{"a workspace config has subscription_id, resource_group and workspace_name, or a Scope resource id"}}
		}
	}
	return ws, nil
}

// jsonWhere adds the line of a JSON syntax error.
func jsonWhere(data []byte, err error) string {
	se, ok := err.(*json.SyntaxError)
	if !ok {
		return err.Error()
	}
	line := 1 + strings.Count(string(data[:min(int(se.Offset), len(data))]), "\n")
	return fmt.Sprintf("line %d: %v", line, err)
}
