package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/runsecrets/runsecrets/resolve"
)

type getCmd struct {
	Refs   []string `arg:"" name:"ref" placeholder:"REF" help:"The secrets to print: NAME, NAME/VERSION, a secret URL, or an @Microsoft.KeyVault(...) reference."`
	Raw    bool     `help:"Print the one value exactly as stored, with no newline added."`
	Reveal bool     `help:"Print values even when standard output is a terminal."`
}

// Help says what the output is.
func (c *getCmd) Help() string {
	return "Each secret is printed as a dotenv line KEY=\"...\" (KEY is the name upper-cased with '_' for '-'), " +
		"quoted so that godotenv, and so --env-file and --secrets-file, read the value back byte for byte. " +
		"A secret that is disabled, expired or not yet valid is refused, as exec refuses it."
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (c *getCmd) Run(ctx context.Context, a *app) error {
	if isTerminal(a.stdout) && !c.Reveal {
		return usage(errors.New("refusing to print secret values to a terminal"),
			"redirect or pipe the output (runsecrets get db-pass > app.env), or add --reveal to show them on screen")
	}
	if c.Raw && len(c.Refs) != 1 {
		return usage(fmt.Errorf("--raw prints one value; %d references given", len(c.Refs)), "run runsecrets get --raw once per secret")
	}
	maps, err := getMappings(c.Refs)
	if err != nil {
		return err
	}
	rc, err := a.detect()
	if err != nil {
		return err
	}
	values, err := a.fetch(ctx, rc, maps, 16)
	if err != nil {
		return err
	}
	if c.Raw {
		_, err := io.WriteString(a.stdout, values[0].Secret.Value)
		return err
	}
	var out strings.Builder
	var errs resolve.Errors
	for _, v := range values {
		line, err := resolve.DotenvLine(v.Env, v.Secret.Value)
		if err != nil {
			errs = append(errs, &kindError{resolve.KindUsage, withHint(fmt.Errorf("%s: secret %s: %w", v.Env, v.Written, err),
				"print it alone, byte for byte: runsecrets get --raw "+v.Written)})
			continue
		}
		out.WriteString(line)
	}
	if len(errs) > 0 {
		return errs
	}
	_, err = io.WriteString(a.stdout, out.String())
	return err
}

// getMappings turns get's references into mappings, each to the variable
// its name stands for (db-pass → DB_PASS). The same reference twice is
// printed once; two references that would print the same variable are an
// error.
func getMappings(refs []string) ([]resolve.Mapping, error) {
	var (
		out  []resolve.Mapping
		errs resolve.Errors
		seen = map[string]int{} // variable → index in out
	)
	for i, written := range refs {
		ref, err := resolve.ParseRef(written)
		if err != nil {
			re := err.(*resolve.RefError)
			errs = append(errs, &kindError{resolve.KindUsage, withHint(err,
				orDefault(re.Hint, "a reference is NAME, NAME/VERSION, https://VAULT.vault.azure.net/secrets/NAME[/VERSION] or @Microsoft.KeyVault(...)"))})
			continue
		}
		m := resolve.Mapping{Env: resolve.EnvKeyFor(ref.Name), Ref: ref, Written: written, From: resolve.Origin{Source: "argument", Item: i + 1}}
		if j, ok := seen[m.Env]; ok {
			prev := out[j].Ref
			if strings.EqualFold(prev.Vault, ref.Vault) && prev.Version == ref.Version {
				continue
			}
			errs = append(errs, &kindError{resolve.KindUsage, withHint(fmt.Errorf("%s and %s would both print as %s", out[j].Written, written, m.Env),
				"get them one at a time with --raw")})
			continue
		}
		seen[m.Env] = len(out)
		out = append(out, m)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}
