package resolve

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ManifestFormat is the format version a Manifest is written with. Readers
// refuse a newer format rather than guess at it.
const ManifestFormat = 1

// Manifest is the values-free record of one run's secrets: which secret and
// which version each variable got, from which vault, in which run context.
// It never holds a value nor a hash of one: a hash of a low-entropy password
// is as good as the password to anyone who can guess.
type Manifest struct {
	Format  int             `json:"format"`
	Time    time.Time       `json:"time"`
	Context ManifestContext `json:"context"`
	Secrets []ManifestEntry `json:"secrets"`
}

// ManifestContext is the run context of a manifest, as package main knows it.
type ManifestContext struct {
	Kind      string            `json:"kind"`
	Workspace map[string]string `json:"workspace,omitempty"`
	// Vaults are the vaults secrets came from, sorted.
	Vaults       []string `json:"vaults"`
	SecretsFile  string   `json:"secrets_file,omitempty"`
	IdentityKind string   `json:"identity_kind,omitempty"`
}

// ManifestEntry is one variable of a manifest.
type ManifestEntry struct {
	Env string `json:"env"`
	// Reference is the reference as written; From says where the mapping
	// came from (a flag, a file and line, a variable).
	Reference   string     `json:"reference"`
	From        string     `json:"from"`
	AsFile      bool       `json:"as_file,omitempty"`
	Vault       string     `json:"vault"`
	Name        string     `json:"name"`
	Version     string     `json:"version,omitempty"`
	Enabled     bool       `json:"enabled"`
	Created     *time.Time `json:"created,omitempty"`
	Updated     *time.Time `json:"updated,omitempty"`
	NotBefore   *time.Time `json:"not_before,omitempty"`
	Expires     *time.Time `json:"expires,omitempty"`
	ContentType string     `json:"content_type,omitempty"`
	// Local reports a value served from a local secrets file, whose
	// versions cannot be known.
	Local bool `json:"local"`
}

// NewManifest records values; a value from the local secrets file is
// recorded with ctx.SecretsFile as its vault.
func NewManifest(ctx ManifestContext, values []Value, now time.Time) Manifest {
	m := Manifest{Format: ManifestFormat, Time: now.UTC().Truncate(time.Second), Context: ctx, Secrets: []ManifestEntry{}}
	vaults := map[string]bool{}
	for _, v := range values {
		vault := v.ID.Vault
		if vault == "" {
			vault = ctx.SecretsFile
		}
		if !v.Secret.Local {
			vaults[vault] = true
		}
		m.Secrets = append(m.Secrets, ManifestEntryFor(v.Planned, v.Secret, vault))
	}
	m.Context.Vaults = slices.Sorted(maps.Keys(vaults))
	return m
}

// ManifestEntryFor records one mapping and what was served for it, from
// vault (a URL, or the local secrets file). A secret that was not served
// (zero) leaves the name and version the mapping asked for.
func ManifestEntryFor(p Planned, s Secret, vault string) ManifestEntry {
	e := ManifestEntry{
		Env: p.Env, Reference: p.Written, From: p.From.String(), AsFile: p.AsFile,
		Vault: vault, Name: p.ID.Name, Version: p.ID.Version, Enabled: s.Enabled,
		Created: timePtr(s.Created), Updated: timePtr(s.Updated),
		NotBefore: timePtr(s.NotBefore), Expires: timePtr(s.Expires),
		ContentType: s.ContentType, Local: s.Local,
	}
	if s.Name != "" {
		e.Name = s.Name
	}
	if s.Version != "" {
		e.Version = s.Version
	}
	return e
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// WriteManifest writes m to path with mode 0600, replacing it atomically so
// a reader never sees half a manifest.
func WriteManifest(path string, m Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write manifest %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write manifest %s: %w", path, err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write manifest %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write manifest %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write manifest %s: %w", path, err)
	}
	return nil
}

// ReadManifest reads a manifest written by WriteManifest.
func ReadManifest(path string, data []byte) (Manifest, error) {
	var m Manifest
	bad := func(reason string) (Manifest, error) {
		return Manifest{}, &FileError{Path: path, Reason: reason, kind: KindUsage,
			Hint: "give a manifest written by `runsecrets exec --manifest` or `runsecrets check --manifest`"}
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return bad("not a runsecrets manifest (invalid JSON)")
	}
	switch {
	case m.Format == 0:
		return bad("not a runsecrets manifest (no format)")
	case m.Format > ManifestFormat:
		return bad(fmt.Sprintf("manifest format %d is newer than this runsecrets understands (%d)", m.Format, ManifestFormat))
	}
	return m, nil
}

// Pin fixes every mapping to the version the manifest recorded for its
// variable. A mapping the manifest lacks, or one whose recorded secret is
// another than the mapping names, is an error (missing), as is a manifest
// entry served from a local file, which has no version to pin.
func (m Manifest) Pin(mappings []Mapping, path string) ([]Mapping, error) {
	byEnv := map[string]ManifestEntry{}
	for _, e := range m.Secrets {
		byEnv[e.Env] = e
	}
	var errs Errors
	out := make([]Mapping, 0, len(mappings))
	lockErr := func(mp Mapping, cause, hint string) {
		errs = append(errs, &FetchError{Env: mp.Env, Ref: mp.Written, Vault: path, Cause: cause, Hint: hint, kind: KindMissing})
	}
	for _, mp := range mappings {
		e, ok := byEnv[mp.Env]
		switch {
		case !ok:
			lockErr(mp, "not in the lock file", "record it first with `runsecrets check --manifest`, or drop the mapping")
			continue
		case e.Local || e.Version == "":
			lockErr(mp, "the lock records no version (it was served from a local file)", "record the lock against a vault")
			continue
		case !strings.EqualFold(e.Name, mp.Ref.Name):
			lockErr(mp, fmt.Sprintf("the lock records secret %s, not %s", e.Name, mp.Ref.Name), "record a new lock for the changed mapping")
			continue
		case mp.Ref.Version != "" && mp.Ref.Version != e.Version:
			lockErr(mp, fmt.Sprintf("the mapping pins version %s, the lock %s", mp.Ref.Version, e.Version), "remove one of the two pins")
			continue
		}
		mp.Ref.Version = e.Version
		if mp.Ref.Vault == "" && e.Vault != "" {
			// The lock pins the vault the run used too, so a context that
			// now finds another vault cannot serve a different secret.
			mp.Ref.Vault = e.Vault
		}
		out = append(out, mp)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}
