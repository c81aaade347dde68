package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/runsecrets/runsecrets/resolve"
	"github.com/runsecrets/runsecrets/runctx"
)

type listCmd struct {
	Long bool `short:"l" help:"Also show whether each secret is enabled, when it was updated, when it expires, its content type and tags."`
	JSON bool `help:"Print a JSON array of objects: name, enabled, created, updated, not_before, expires, content_type, tags."`
}

// Help says what list never shows.
func (c *listCmd) Help() string {
	return "Lists every secret of the run context's vault (every page of the listing), sorted by name; " +
		"in the local secrets file context, the names the file serves. Values are never shown: the " +
		"listing does not carry them."
}

// secretJSON is one secret of `list --json`. Unset times and empty fields
// are left out.
type secretJSON struct {
	Name        string            `json:"name"`
	Enabled     bool              `json:"enabled"`
	Created     *time.Time        `json:"created,omitempty"`
	Updated     *time.Time        `json:"updated,omitempty"`
	NotBefore   *time.Time        `json:"not_before,omitempty"`
	Expires     *time.Time        `json:"expires,omitempty"`
	ContentType string            `json:"content_type,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

func (c *listCmd) Run(ctx context.Context, a *app) error {
	rc, err := a.detect()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	var secrets []resolve.Secret
	if rc.Kind == runctx.KindLocalFile {
		p, err := a.provider(ctx, rc, 1)
		if err != nil {
			return err
		}
		names := p.(*resolve.LocalFile).Names()
		slices.Sort(names)
		for _, n := range names {
			secrets = append(secrets, resolve.Secret{Name: n, Enabled: true, Local: true})
		}
	} else {
		kv, err := a.keyVault(ctx, rc, 4)
		if err != nil {
			return err
		}
		var f *resolve.Failure
		if secrets, f = kv.List(ctx, rc.VaultURL); f != nil {
			if f.Detail != "" {
				a.log.Debug("service answer", "vault", rc.VaultURL, "detail", f.Detail)
			}
			return &kindError{f.Kind, withHint(fmt.Errorf("cannot list the secrets of %s: %s", rc.VaultURL, f.Cause), f.Hint)}
		}
	}
	a.log.Info(fmt.Sprintf("%d secrets", len(secrets)), "in", vaultOf(rc, rc.VaultURL))
	if c.JSON {
		out := make([]secretJSON, len(secrets))
		for i, s := range secrets {
			out[i] = secretJSON{Name: s.Name, Enabled: s.Enabled, Created: utcPtr(s.Created), Updated: utcPtr(s.Updated),
				NotBefore: utcPtr(s.NotBefore), Expires: utcPtr(s.Expires), ContentType: s.ContentType, Tags: s.Tags}
		}
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if !c.Long {
		var b strings.Builder
		for _, s := range secrets {
			b.WriteString(s.Name + "\n")
		}
		_, err := fmt.Fprint(a.stdout, b.String())
		return err
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tENABLED\tUPDATED\tEXPIRES\tCONTENT-TYPE\tTAGS")
	for _, s := range secrets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, yesNo(s.Enabled), stamp(s.Updated), stamp(s.Expires), orDash(s.ContentType), tags(s.Tags))
	}
	return tw.Flush()
}

func utcPtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// stamp writes a time for tables: RFC 3339 in UTC, "-" when unset.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func tags(t map[string]string) string {
	if len(t) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(t)) {
		parts = append(parts, k+"="+t[k])
	}
	return strings.Join(parts, ",")
}
