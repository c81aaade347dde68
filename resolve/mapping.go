package resolve

import (
	"fmt"
	"slices"
	"strings"
)

// Origin says where a mapping came from, for plans and error messages.
type Origin struct {
	// Source is the flag or variable: "--map", "--file", "--map-file",
	// "RUNSECRETS_MAP", "environment" or "--env-file".
	Source string
	// File is the map or env file, for file sources.
	File string
	// Line is the 1-based line in File; Item is the 1-based position among
	// repeated flags or list items. Zero when unknown or not applicable.
	Line int
	Item int
	// Var is the variable that held an environment reference.
	Var string
}

func (o Origin) String() string {
	switch {
	case o.File != "" && o.Line > 0:
		return fmt.Sprintf("%s %s:%d", o.Source, o.File, o.Line)
	case o.File != "":
		return o.Source + " " + o.File
	case o.Var != "":
		return fmt.Sprintf("%s variable %s", o.Source, o.Var)
	case o.Item > 0:
		return fmt.Sprintf("%s #%d", o.Source, o.Item)
	}
	return o.Source
}

// Mapping binds one environment variable to one secret reference.
type Mapping struct {
	Env string
	Ref Ref
	// Written is the reference as the user wrote it.
	Written string
	From    Origin
	// AsFile asks for the value in a private file whose path ENV holds
	// (--file) instead of the value itself.
	AsFile bool
}

// EnvNameRule is the rule every mapped variable name follows.
const EnvNameRule = "^[A-Za-z_][A-Za-z0-9_]*$"

// ValidEnvName reports whether name follows EnvNameRule.
func ValidEnvName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return name != ""
}

// Entry is one KEY=VALUE of a dotenv file or of the environment, with the
// line it was read from (0 when unknown).
type Entry struct {
	Key   string
	Value string
	Line  int
}

// EnvFile is a parsed --env-file.
type EnvFile struct {
	Path    string
	Entries []Entry
}

// Sources are the raw inputs of every mapping source of SPEC §3, in the form
// package main has them. Files are already read and parsed.
type Sources struct {
	Maps  []string // --map values, in order
	Files []string // --file values, in order
	// MapFiles are the parsed --map-file files, in order.
	MapFiles []EnvFile
	// RunsecretsMap is the value of RUNSECRETS_MAP ("" when unset).
	RunsecretsMap string
	// Environ is the inherited environment, os.Environ form.
	Environ []string
	// EnvFiles are the parsed --env-file files, in order.
	EnvFiles []EnvFile
	// NoEnvRefs turns off references in Environ and EnvFiles.
	NoEnvRefs bool
}

// Collect merges every source into one ordered list of mappings: --map,
// --file, --map-file, RUNSECRETS_MAP, then references in the environment and
// env files. Every bad mapping is reported, together, in an Errors.
func Collect(src Sources) ([]Mapping, error) {
	c := collector{seen: map[string]int{}}
	for i, m := range src.Maps {
		c.addPair(m, Origin{Source: "--map", Item: i + 1}, false)
	}
	for i, m := range src.Files {
		c.addPair(m, Origin{Source: "--file", Item: i + 1}, true)
	}
	for _, f := range src.MapFiles {
		for _, e := range f.Entries {
			c.add(e.Key, e.Value, Origin{Source: "--map-file", File: f.Path, Line: e.Line}, false)
		}
	}
	item := 0
	for part := range strings.FieldsFuncSeq(src.RunsecretsMap, func(r rune) bool { return r == ',' || r == '\n' }) {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		item++
		c.addPair(part, Origin{Source: "RUNSECRETS_MAP", Item: item}, false)
	}
	if !src.NoEnvRefs {
		for _, v := range EnvReferences(src.Environ, src.EnvFiles) {
			c.add(v.Key, v.Ref, v.From, false)
		}
	}
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	return c.out, nil
}

// EnvRef is a variable whose value is a secret reference.
type EnvRef struct {
	Key  string
	Ref  string // the reference, without a keyvault: prefix
	From Origin
}

// EnvReferences finds the variables of the child's environment before
// secrets (the environment overlaid by the env files, later files winning)
// whose whole value is keyvault:REF or @Microsoft.KeyVault(...).
func EnvReferences(environ []string, files []EnvFile) []EnvRef {
	type val struct {
		value string
		from  Origin
	}
	merged := map[string]val{}
	var order []string
	set := func(k string, v val) {
		if _, ok := merged[k]; !ok {
			order = append(order, k)
		}
		merged[k] = v
	}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && k != "" && !strings.HasPrefix(k, "RUNSECRETS_") {
			set(k, val{v, Origin{Source: "environment", Var: k}})
		}
	}
	for _, f := range files {
		for _, e := range f.Entries {
			set(e.Key, val{e.Value, Origin{Source: "--env-file", File: f.Path, Line: e.Line}})
		}
	}
	var out []EnvRef
	for _, k := range order {
		if ref, ok := envRef(merged[k].value); ok {
			out = append(out, EnvRef{Key: k, Ref: ref, From: merged[k].from})
		}
	}
	slices.SortStableFunc(out, func(a, b EnvRef) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// envRef reports whether a variable's value is a secret reference.
func envRef(v string) (string, bool) {
	if len(v) > len("keyvault:") && strings.EqualFold(v[:len("keyvault:")], "keyvault:") {
		return v[len("keyvault:"):], true
	}
	if len(v) > len(kvPrefix) && strings.EqualFold(v[:len(kvPrefix)], kvPrefix) {
		return v, true
	}
	return "", false
}

type collector struct {
	out  []Mapping
	seen map[string]int // ENV → index in out
	errs Errors
}

// addPair adds ENV=REF, or ENV alone meaning the secret named after ENV.
func (c *collector) addPair(pair string, from Origin, asFile bool) {
	env, ref, ok := strings.Cut(pair, "=")
	env = strings.TrimSpace(env)
	if !ok {
		if asFile {
			c.errs = append(c.errs, &MappingError{Env: env, From: from, Reason: "--file needs ENV=REF", Hint: "write --file KEY_FILE=key-pem"})
			return
		}
		ref = SecretNameFor(env)
	}
	c.add(env, ref, from, asFile)
}

func (c *collector) add(env, written string, from Origin, asFile bool) {
	if !ValidEnvName(env) {
		c.errs = append(c.errs, &MappingError{Env: env, From: from,
			Reason: fmt.Sprintf("invalid variable name %q", env),
			Hint:   "variable names must match " + EnvNameRule})
		return
	}
	written = strings.TrimSpace(written)
	ref, err := ParseRef(written)
	if err != nil {
		re := err.(*RefError)
		c.errs = append(c.errs, &MappingError{Env: env, From: from, Reason: re.Error(), Hint: re.Hint})
		return
	}
	m := Mapping{Env: env, Ref: ref, Written: written, From: from, AsFile: asFile}
	i, dup := c.seen[env]
	if !dup {
		c.seen[env] = len(c.out)
		c.out = append(c.out, m)
		return
	}
	prev := c.out[i]
	if prev.AsFile != asFile {
		c.errs = append(c.errs, &MappingError{Env: env, From: prev.From, Other: from,
			Reason: "mapped both as a value and as a --file path",
			Hint:   "use one name for the value and another for the file"})
		return
	}
	if !sameRef(prev.Ref, ref) {
		c.errs = append(c.errs, &MappingError{Env: env, From: prev.From, Other: from,
			Reason: fmt.Sprintf("mapped to two different secrets, %s and %s", prev.Written, written),
			Hint:   "remove one of the two mappings"})
	}
}

// sameRef reports whether two references name the same secret as written:
// same vault, same name ignoring case, same version.
func sameRef(a, b Ref) bool {
	return strings.EqualFold(a.Vault, b.Vault) && strings.EqualFold(a.Name, b.Name) && a.Version == b.Version
}
