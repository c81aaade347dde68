package launcher

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
)

// Var is one environment variable given by name and value, as opposed to
// the "NAME=VALUE" strings of os.Environ, so that a value containing "=" is
// never mistaken for part of the name.
type Var struct {
	Name, Value string
}

// EnvSpec lists the layers of the child environment, lowest precedence
// first (SPEC §5). Within a layer a later entry wins over an earlier one.
type EnvSpec struct {
	// Inherited is the parent environment in os.Environ form. Entries
	// without "=" and RUNSECRETS_* settings are dropped: the settings
	// configure runsecrets and are not meant for the child.
	Inherited []string
	// Files are the --env-file entries, in order.
	Files []Var
	// Secrets are the resolved secret values and --file paths.
	Secrets []Var
	// Runtime are variables runsecrets itself sets for the child, such as
	// RUNSECRETS_MANIFEST. They are applied last, are exempt from the
	// RUNSECRETS_ rule and are never reported as overrides.
	Runtime []Var
	// Scrub names variables removed from the result (--scrub-credentials).
	Scrub []string
}

// Env is a built child environment.
type Env struct {
	// Vars are "NAME=VALUE" entries, one per name, sorted by name, ready
	// for execve.
	Vars []string
	// Overridden names the Secrets that replaced a value from Inherited or
	// Files, sorted, so the caller can warn about them. Names that are
	// scrubbed are not listed: nothing of theirs reaches the child.
	Overridden []string
}

// Layer says which part of an EnvSpec a variable came from, so errors can
// point at the source to fix.
type Layer int

// The layers of an EnvSpec, lowest precedence first.
const (
	LayerInherited Layer = iota
	LayerFile
	LayerSecret
	LayerRuntime
)

// String describes the layer for error messages.
func (l Layer) String() string {
	switch l {
	case LayerInherited:
		return "the inherited environment"
	case LayerFile:
		return "an env file"
	case LayerSecret:
		return "a secret"
	case LayerRuntime:
		return "runsecrets itself"
	}
	return fmt.Sprintf("layer %d", int(l))
}

// NULError reports a NUL byte in a variable that would reach the child.
// execve takes C strings, so a NUL would silently truncate the value (or
// the name); refusing is the only safe choice. The error names the
// variable and its layer, never the value.
type NULError struct {
	Name  string // the variable
	Layer Layer  // where it came from
}

// Error names the variable and its layer; the value is never included.
func (e *NULError) Error() string {
	return fmt.Sprintf("environment variable %q from %s contains a NUL byte", e.Name, e.Layer)
}

// NameError reports a variable name that cannot be put into an environment
// entry: an empty name, or one containing "=" (the child would split it
// differently and see another variable).
type NameError struct {
	Name  string // the name as given
	Layer Layer  // where it came from
}

// Error quotes the name; it holds no secret, and quoting shows what is wrong.
func (e *NameError) Error() string {
	return fmt.Sprintf("invalid environment variable name %q from %s", e.Name, e.Layer)
}

// isWindows is true where environment names are case-insensitive and
// paths use backslashes.
const isWindows = runtime.GOOS == "windows"

// settingsPrefix marks runsecrets' own settings, which the child does not
// inherit.
const settingsPrefix = "RUNSECRETS_"

// BuildEnv merges the layers of spec into the child environment. Each name
// appears once; a later layer replaces an earlier one, and within a layer
// the last entry wins, as os/exec does. On Windows names compare
// case-insensitively and the spelling of the winning entry is kept.
//
// A NUL byte in a name or value that would reach the child is a *NULError;
// a bad name in Files, Secrets or Runtime is a *NameError. Variables that
// are dropped, replaced or scrubbed are not checked: they never reach
// execve.
func BuildEnv(spec EnvSpec) (Env, error) {
	return buildEnv(spec, isWindows)
}

// entry is a variable in the making, remembering where it came from.
type entry struct {
	name, value string
	layer       Layer
}

// buildEnv is BuildEnv with the case rule as a parameter, so the Windows
// behaviour is tested on every system.
func buildEnv(spec EnvSpec, fold bool) (Env, error) {
	key := func(name string) string {
		if fold {
			return strings.ToUpper(name)
		}
		return name
	}
	vars := make(map[string]entry, len(spec.Inherited)+len(spec.Files)+len(spec.Secrets)+len(spec.Runtime))

	for _, kv := range spec.Inherited {
		name, value, ok := splitEntry(kv, fold)
		if !ok || strings.HasPrefix(key(name), settingsPrefix) {
			continue
		}
		vars[key(name)] = entry{name, value, LayerInherited}
	}

	set := func(vs []Var, layer Layer) error {
		for _, v := range vs {
			if v.Name == "" || strings.Contains(v.Name, "=") {
				return &NameError{Name: v.Name, Layer: layer}
			}
			vars[key(v.Name)] = entry{v.Name, v.Value, layer}
		}
		return nil
	}
	if err := set(spec.Files, LayerFile); err != nil {
		return Env{}, err
	}

	// The override warning is about values the user set elsewhere, so it
	// compares against the layers below Secrets only, before they are
	// replaced.
	overridden := map[string]string{}
	for _, v := range spec.Secrets {
		if old, ok := vars[key(v.Name)]; ok && old.layer < LayerSecret {
			overridden[key(v.Name)] = v.Name
		}
	}
	if err := set(spec.Secrets, LayerSecret); err != nil {
		return Env{}, err
	}
	if err := set(spec.Runtime, LayerRuntime); err != nil {
		return Env{}, err
	}

	for _, name := range spec.Scrub {
		delete(vars, key(name))
		delete(overridden, key(name))
	}

	keys := make([]string, 0, len(vars))
	for k, e := range vars {
		if strings.IndexByte(e.name, 0) >= 0 || strings.IndexByte(e.value, 0) >= 0 {
			return Env{}, &NULError{Name: e.name, Layer: e.layer}
		}
		keys = append(keys, k)
	}
	// Sorting by the key (the folded name on Windows) gives a stable order
	// for diffs and manifests; Windows also expects its environment block
	// sorted case-insensitively.
	sort.Strings(keys)

	env := Env{Vars: make([]string, len(keys))}
	for i, k := range keys {
		env.Vars[i] = vars[k].name + "=" + vars[k].value
	}
	for k := range overridden {
		env.Overridden = append(env.Overridden, overridden[k])
	}
	sort.Strings(env.Overridden)
	return env, nil
}

// splitEntry splits an os.Environ entry. Windows keeps per-drive working
// directories in variables whose names start with "=" (such as "=C:"), so
// there the first "=" of the name is not the separator.
func splitEntry(kv string, windows bool) (name, value string, ok bool) {
	start := 0
	if windows && strings.HasPrefix(kv, "=") {
		start = 1
	}
	i := strings.IndexByte(kv[start:], '=')
	if i < 0 {
		return "", "", false
	}
	i += start
	if i == 0 {
		return "", "", false
	}
	return kv[:i], kv[i+1:], true
}

// lookupEnv returns the value of name in an os.Environ-form list, the last
// entry winning as in BuildEnv. Exec uses it to find the child's PATH.
func lookupEnv(env []string, name string, fold bool) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		n, v, ok := splitEntry(env[i], fold)
		if ok && (n == name || fold && strings.ToUpper(n) == strings.ToUpper(name)) {
			return v, true
		}
	}
	return "", false
}
