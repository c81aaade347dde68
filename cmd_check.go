package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/runsecrets/runsecrets/resolve"
	"github.com/runsecrets/runsecrets/runctx"
)

type checkCmd struct {
	mappingFlags
	JSON          bool          `help:"Print the report as JSON."`
	ExpiresWithin time.Duration `placeholder:"DURATION" help:"Also fail when a secret expires within DURATION from now: a Go duration such as 72h, the length of the job."`
	Manifest      string        `placeholder:"FILE" help:"When every mapping resolves, write the manifest exec --manifest would write (no values), to record what a job will use before it is submitted."`
}

// Help says what check proves.
func (c *checkCmd) Help() string {
	return "Takes the mappings exactly as exec does, fetches every secret and reports, per variable, the " +
		"secret, vault, version, whether it is enabled, when it was updated and when it expires. Every " +
		"secret that is missing, disabled, expired or not yet valid (or expires within --expires-within) " +
		"is named, and the exit status is 83. No value is ever printed."
}

// checkReport is what check found; `check --json` prints it.
type checkReport struct {
	OK       bool         `json:"ok"`
	Context  checkContext `json:"context"`
	Mappings []checkEntry `json:"mappings"`
}

type checkContext struct {
	Kind        runctx.Kind `json:"kind"`
	VaultURL    string      `json:"vault_url,omitempty"`
	SecretsFile string      `json:"secrets_file,omitempty"`
}

// checkEntry is one variable: a manifest entry (SPEC §9), plus whether it
// is usable and why not.
type checkEntry struct {
	resolve.ManifestEntry
	OK      bool   `json:"ok"`
	Problem string `json:"problem,omitempty"`
	// served says the source answered with the secret (attributes known).
	served bool
}

func (c *checkCmd) Run(ctx context.Context, a *app) error {
	if c.ExpiresWithin < 0 {
		return usage(fmt.Errorf("--expires-within %s is negative", c.ExpiresWithin), "give the time the job needs, such as 72h")
	}
	maps, _, err := a.mappings(c.mappingFlags)
	if err != nil {
		return err
	}
	if len(maps) == 0 {
		return usage(errors.New("no mappings to check"), "give --map ENV=REF, --map-file FILE or RUNSECRETS_MAP, as for exec")
	}
	rc, err := a.detectFor(maps)
	if err != nil {
		return err
	}
	if maps, err = a.pin(rc, maps, c.Lock); err != nil {
		return err
	}
	outcomes, err := a.fetchEach(ctx, rc, maps, c.Concurrency, c.ExpiresWithin)
	if err != nil {
		return err
	}
	report := checkReport{OK: true, Context: checkContext{Kind: rc.Kind, VaultURL: rc.VaultURL, SecretsFile: rc.SecretsFile}}
	var errs resolve.Errors
	for _, o := range outcomes {
		e := checkEntry{ManifestEntry: resolve.ManifestEntryFor(o.Planned, o.Secret, vaultOf(rc, o.ID.Vault)),
			OK: o.Err == nil, served: o.Secret.Name != ""}
		e.Local = rc.Kind == runctx.KindLocalFile
		if o.Err != nil {
			e.Problem = o.Err.Cause
			report.OK = false
			errs = append(errs, o.Err)
		}
		report.Mappings = append(report.Mappings, e)
	}
	if c.JSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return err
		}
	} else if err := printCheck(a, report); err != nil {
		return err
	}
	if len(errs) > 0 {
		return errs
	}
	if c.Manifest != "" {
		values, err := resolve.Values(outcomes)
		if err != nil {
			return err
		}
		if _, err := a.writeManifest(c.Manifest, rc, values); err != nil {
			return err
		}
	}
	return nil
}

func printCheck(a *app, r checkReport) error {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENV\tSECRET\tVAULT\tVERSION\tENABLED\tUPDATED\tEXPIRES\tSTATUS")
	for _, e := range r.Mappings {
		version, enabled := e.Version, yesNo(e.Enabled)
		switch {
		case e.Local:
			version = "(local file)"
		case version == "":
			version = "-"
		}
		status := "ok"
		if !e.OK {
			status = e.Problem
		}
		if !e.served {
			enabled = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Env, e.Name, e.Vault, version, enabled, stampPtr(e.Updated), stampPtr(e.Expires), status)
	}
	return tw.Flush()
}

func stampPtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return stamp(*t)
}
