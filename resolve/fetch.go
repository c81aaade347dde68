package resolve

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// SecretID names one secret (one version, or the latest) in one vault.
type SecretID struct {
	// Vault is the vault URL, lower case; empty for a local secrets file.
	Vault string
	// Name is lower case: Key Vault names are case-insensitive.
	Name    string
	Version string
}

func (id SecretID) String() string {
	s := id.Name
	if id.Version != "" {
		s += "/" + id.Version
	}
	return s
}

// Secret is a fetched secret: its value and its attributes.
type Secret struct {
	Value       string
	Name        string // as the vault spells it
	Version     string
	ContentType string
	Enabled     bool
	// Zero times are unset attributes.
	Created, Updated, NotBefore, Expires time.Time
	Tags                                 map[string]string
	// Local reports a value served from a local secrets file.
	Local bool
}

// Failure is why one secret could not be had, before it is tied to the
// variables that wanted it.
type Failure struct {
	Kind  Kind
	Cause string
	Hint  string
	// Detail is the raw service answer, for debug logs only.
	Detail string
	// identity marks a credential failure, which every secret of the vault shares.
	identity bool
}

func (f *Failure) Error() string { return f.Cause }

// Result is the outcome of fetching one SecretID: a Secret or a Failure.
type Result struct {
	Secret Secret
	Err    *Failure
}

// Provider fetches secrets. Fetch returns one Result per id, in order, and
// fetches each id once.
type Provider interface {
	Fetch(ctx context.Context, ids []SecretID) []Result
}

// Planned is a mapping with its vault decided.
type Planned struct {
	Mapping
	ID SecretID
}

// Plan decides the vault of every mapping: the reference's own, else
// contextVault. suffix is the cloud's vault DNS suffix for references by
// vault name. contextVault is empty for a local secrets file.
func Plan(maps []Mapping, contextVault, suffix string) []Planned {
	out := make([]Planned, len(maps))
	for i, m := range maps {
		vault := strings.TrimSuffix(strings.ToLower(m.Ref.VaultURL(contextVault, suffix)), "/")
		out[i] = Planned{Mapping: m, ID: SecretID{Vault: vault, Name: strings.ToLower(m.Ref.Name), Version: m.Ref.Version}}
	}
	return out
}

// Value is a planned mapping with its secret.
type Value struct {
	Planned
	Secret Secret
}

// Fetch resolves every planned mapping through p, all or nothing: each
// distinct secret is fetched once, and either every mapping gets a value or
// the error lists every mapping that did not, one FetchError each. A secret
// that is disabled, expired or not yet valid at now counts as missing: Key
// Vault serves expired secrets with a 200 and leaves the check to clients.
func Fetch(ctx context.Context, plan []Planned, p Provider, now time.Time) ([]Value, error) {
	return Values(FetchEach(ctx, plan, p, now, 0))
}

// Outcome is what became of one planned mapping: its secret, or why it
// cannot be used. Secret holds what the vault served even when Err is set
// (an expired secret's attributes, say); it is zero when nothing was served.
type Outcome struct {
	Planned
	Secret Secret
	Err    *FetchError
}

// FetchEach fetches like Fetch, but reports every mapping's outcome instead
// of stopping at the first failure, for reports such as `runsecrets check`.
// When validFor is positive, a secret that expires within validFor of now is
// a failure too (missing): a job that runs that long would lose it midway.
func FetchEach(ctx context.Context, plan []Planned, p Provider, now time.Time, validFor time.Duration) []Outcome {
	index := map[SecretID]int{}
	var ids []SecretID
	for _, m := range plan {
		if _, ok := index[m.ID]; !ok {
			index[m.ID] = len(ids)
			ids = append(ids, m.ID)
		}
	}
	results := p.Fetch(ctx, ids)
	where := func(id SecretID) string {
		if l, ok := p.(*LocalFile); ok && id.Vault == "" {
			return l.Path()
		}
		return id.Vault
	}
	out := make([]Outcome, len(plan))
	for i, m := range plan {
		r := results[index[m.ID]]
		out[i] = Outcome{Planned: m, Secret: r.Secret}
		f := r.Err
		if f == nil {
			f = usable(r.Secret, now)
		}
		if f == nil && validFor > 0 {
			f = lasts(r.Secret, now, validFor)
		}
		if f != nil {
			out[i].Err = &FetchError{Env: m.Env, Ref: m.Written, Vault: where(m.ID),
				Cause: f.Cause, Hint: f.Hint, kind: f.Kind, Detail: f.Detail}
		}
	}
	return out
}

// Values is the all-or-nothing view of outcomes: every value, or an Errors
// listing every failure.
func Values(outcomes []Outcome) ([]Value, error) {
	var errs Errors
	values := make([]Value, len(outcomes))
	for i, o := range outcomes {
		if o.Err != nil {
			errs = append(errs, o.Err)
			continue
		}
		values[i] = Value{Planned: o.Planned, Secret: o.Secret}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return values, nil
}

// lasts checks that a secret does not expire within d of now.
func lasts(s Secret, now time.Time, d time.Duration) *Failure {
	if s.Expires.IsZero() || s.Expires.After(now.Add(d)) {
		return nil
	}
	return &Failure{Kind: KindMissing,
		Cause: fmt.Sprintf("the secret expires at %s, within %s", s.Expires.UTC().Format(time.RFC3339), shortDuration(d)),
		Hint:  "set a new version with a later expiry, or extend this one's in the vault"}
}

// shortDuration writes d without trailing zero units: 72h, 1h30m, 90s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// usable checks the attributes Key Vault leaves to its clients.
func usable(s Secret, now time.Time) *Failure {
	const hint = "set a new version, or change the secret's attributes in the vault"
	switch {
	case !s.Enabled:
		return &Failure{Kind: KindMissing, Cause: "the secret is disabled", Hint: "enable it, or " + hint}
	case !s.Expires.IsZero() && !now.Before(s.Expires):
		return &Failure{Kind: KindMissing, Cause: fmt.Sprintf("the secret expired at %s", s.Expires.UTC().Format(time.RFC3339)), Hint: hint}
	case !s.NotBefore.IsZero() && now.Before(s.NotBefore):
		return &Failure{Kind: KindMissing, Cause: fmt.Sprintf("the secret is not valid before %s", s.NotBefore.UTC().Format(time.RFC3339)), Hint: hint}
	}
	return nil
}
