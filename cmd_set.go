package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/runsecrets/runsecrets/resolve"
	"github.com/runsecrets/runsecrets/runctx"
)

type setCmd struct {
	Name        string   `arg:"" optional:"" help:"The secret's name: 1-127 letters, digits and '-' (not with --dotenv)."`
	Argv        []string `arg:"" optional:"" hidden:"" name:"value" help:"Refused: a value on the command line is visible to other users and kept in shell history."`
	FromEnv     string   `xor:"source" placeholder:"VAR" help:"Take the value from environment variable VAR."`
	FromFile    string   `xor:"source" placeholder:"PATH" help:"Take the value from a file, byte for byte (a PEM, a JSON key)."`
	Dotenv      string   `xor:"source" placeholder:"FILE" help:"Set every KEY=value of a dotenv file, as secret KEY in lower case with '-' for '_' (DB_PASS → db-pass)."`
	ContentType string   `placeholder:"TYPE" help:"The content type to record, such as application/x-pem-file."`
	Tag         []string `sep:"none" placeholder:"K=V" help:"A tag to record (repeatable)."`
	Expires     string   `placeholder:"TIME" help:"When the value expires: an RFC 3339 time (2027-01-31T00:00:00Z) or a duration from now (2160h)."`
	NotBefore   string   `placeholder:"TIME" help:"When the value becomes valid: an RFC 3339 time or a duration from now."`
	Concurrency int      `default:"16" help:"Secrets set at once with --dotenv."`
}

// Help explains where the value comes from.
func (c *setCmd) Help() string {
	return "Without --from-env or --from-file the value is read from standard input, byte for byte " +
		"(printf %s \"$PASS\" | runsecrets set db-pass), or typed twice at a prompt that does not echo " +
		"when standard input is a terminal. Setting an existing name makes a new version; the version id " +
		"is printed. In the local secrets file context, the file's line for the secret is replaced (or one " +
		"is added) and the rest of the file is kept."
}

// kindError is a failure whose kind decides the exit status, for the
// failures commands build themselves; its hint is printed by report.
type kindError struct {
	kind resolve.Kind
	err  error
}

func (e *kindError) Error() string      { return e.err.Error() }
func (e *kindError) Unwrap() error      { return e.err }
func (e *kindError) Kind() resolve.Kind { return e.kind }

func usage(err error, hint string) error {
	return &exitError{code: exitUsage, err: withHint(err, hint)}
}

// failed turns a provider failure about one secret into an error.
func (a *app) failed(secret, where string, f *resolve.Failure) error {
	if f.Detail != "" {
		a.log.Debug("service answer", "secret", secret, "detail", f.Detail)
	}
	return &kindError{f.Kind, withHint(fmt.Errorf("secret %s in %s: %s", secret, where, f.Cause), f.Hint)}
}

const nameRule = "secret names are 1-127 letters, digits and '-'"

func (c *setCmd) Run(ctx context.Context, a *app) error {
	if len(c.Argv) > 0 {
		return usage(errors.New("runsecrets set takes no value on the command line"),
			"use --from-env VAR, --from-file PATH, a pipe, or the prompt\n"+
				"a value given as an argument is visible to other users and kept in shell history: consider it exposed and rotate it")
	}
	now := time.Now()
	opts, err := c.options(now)
	if err != nil {
		return err
	}
	if c.Dotenv != "" {
		if c.Name != "" {
			return usage(fmt.Errorf("give NAME or --dotenv, not both"), "runsecrets set --dotenv FILE sets every key of FILE")
		}
		return c.batch(ctx, a, opts)
	}
	if c.Name == "" {
		return usage(errors.New("no secret name"), "runsecrets set NAME, or runsecrets set --dotenv FILE")
	}
	if reason, hint := resolve.CheckName(c.Name); reason != "" {
		return usage(fmt.Errorf("invalid secret name %q: %s", c.Name, reason), orDefault(hint, nameRule))
	}
	rc, err := a.detect()
	if err != nil {
		return err
	}
	value, err := c.value(a)
	if err != nil {
		return err
	}
	if err := resolve.CheckValue(value); err != nil {
		return &exitError{code: exitUsage, err: valueError(c.Name, value, err)}
	}
	if rc.Kind == runctx.KindLocalFile {
		c.warnLocal(a)
		if err := resolve.SetLocal(rc.SecretsFile, []resolve.Update{{Name: c.Name, Value: value}}); err != nil {
			return localError(err)
		}
		a.log.Info("set "+c.Name, "file", rc.SecretsFile)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	kv, err := a.keyVault(ctx, rc, 4)
	if err != nil {
		return err
	}
	s, f := kv.Set(ctx, rc.VaultURL, c.Name, value, opts)
	if f != nil {
		return a.failed(c.Name, rc.VaultURL, f)
	}
	a.log.Info("set "+c.Name, "vault", rc.VaultURL, "version", s.Version)
	_, err = fmt.Fprintln(a.stdout, s.Version)
	return err
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// keyVault opens the Key Vault provider of a vault context.
func (a *app) keyVault(ctx context.Context, rc *runctx.Context, concurrency int) (*resolve.KeyVault, error) {
	p, err := a.provider(ctx, rc, concurrency)
	if err != nil {
		return nil, err
	}
	kv, ok := p.(*resolve.KeyVault)
	if !ok {
		return nil, fmt.Errorf("internal error: the %s context has no Key Vault provider", rc.Kind)
	}
	return kv, nil
}

// options reads the attributes to store with the value.
func (c *setCmd) options(now time.Time) (resolve.SetOptions, error) {
	var o resolve.SetOptions
	if len(c.ContentType) > resolve.MaxContentType {
		return o, usage(fmt.Errorf("--content-type is %d characters; Key Vault keeps at most %d", len(c.ContentType), resolve.MaxContentType), "shorten it")
	}
	o.ContentType = c.ContentType
	for _, t := range c.Tag {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return o, usage(fmt.Errorf("--tag %q is not K=V", t), "write --tag team=ml")
		}
		if o.Tags == nil {
			o.Tags = map[string]string{}
		}
		if _, dup := o.Tags[k]; dup {
			return o, usage(fmt.Errorf("--tag %s is given twice", k), "give each tag once")
		}
		o.Tags[k] = v
	}
	if len(o.Tags) > 15 {
		return o, usage(fmt.Errorf("%d tags; Key Vault keeps at most 15", len(o.Tags)), "drop some --tag flags")
	}
	var err error
	if o.Expires, err = when("--expires", c.Expires, now); err != nil {
		return o, err
	}
	if o.NotBefore, err = when("--not-before", c.NotBefore, now); err != nil {
		return o, err
	}
	if !o.Expires.IsZero() && !o.Expires.After(now) {
		return o, usage(fmt.Errorf("--expires %s is already past", c.Expires), "give a time ahead, or a positive duration")
	}
	if !o.Expires.IsZero() && !o.NotBefore.IsZero() && !o.NotBefore.Before(o.Expires) {
		return o, usage(errors.New("--not-before is not before --expires"), "the value must become valid before it expires")
	}
	return o, nil
}

// when parses an RFC 3339 time or a duration from now.
func when(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d).Truncate(time.Second), nil
	}
	return time.Time{}, usage(fmt.Errorf("%s %q is neither an RFC 3339 time nor a duration", flag, s),
		"write 2027-01-31T00:00:00Z, or a duration such as 720h (Go durations have no days: 30 days is 720h)")
}

// warnLocal says that the local secrets file keeps values only.
func (c *setCmd) warnLocal(a *app) {
	var ignored []string
	for flag, set := range map[string]bool{"--content-type": c.ContentType != "", "--tag": len(c.Tag) > 0, "--expires": c.Expires != "", "--not-before": c.NotBefore != ""} {
		if set {
			ignored = append(ignored, flag)
		}
	}
	if len(ignored) > 0 {
		slices.Sort(ignored)
		a.log.Warn("the local secrets file keeps values only; ignoring " + strings.Join(ignored, ", "))
	}
}

// localError gives a failed update of the local secrets file its hint.
func localError(err error) error {
	var de *resolve.DotenvError
	if errors.As(err, &de) {
		return &kindError{resolve.KindUsage, withHint(err, "a local secrets file is a dotenv file and cannot hold this value: keep it in a vault")}
	}
	return err
}

// valueError explains why a value cannot be stored, never quoting it.
func valueError(name, value string, err error) error {
	hint := "give the value with --from-env VAR, --from-file PATH, on standard input, or at the prompt"
	switch {
	case len(value) > resolve.MaxValueBytes:
		hint = "keep a large file elsewhere (a storage account, the image) and store its key or URL as the secret"
	case !utf8.ValidString(value):
		hint = "store binary data as base64 text (with --content-type application/base64) and decode it in the job"
	}
	return withHint(fmt.Errorf("secret %s: %w", name, err), hint)
}

// value reads the value from the one source the flags name.
func (c *setCmd) value(a *app) (string, error) {
	switch {
	case c.FromEnv != "":
		v, ok := a.lookup(c.FromEnv)
		if !ok {
			return "", usage(fmt.Errorf("--from-env %s: the variable is not set", c.FromEnv), "export it first, or give the value another way")
		}
		return v, nil
	case c.FromFile != "":
		data, err := os.ReadFile(c.FromFile)
		if err != nil {
			return "", usage(fmt.Errorf("--from-file %s: %v", c.FromFile, unwrapPath(err)), "check the path")
		}
		return string(data), nil
	case a.stdin != nil && term.IsTerminal(int(a.stdin.Fd())):
		return c.prompt(a)
	}
	if a.stdin == nil {
		return "", nil
	}
	// A bound far above Key Vault's limit, so a runaway pipe cannot eat
	// the memory; CheckValue reports the size.
	data, err := io.ReadAll(io.LimitReader(a.stdin, 64*resolve.MaxValueBytes))
	if err != nil {
		return "", fmt.Errorf("cannot read the value from standard input: %w", err)
	}
	if n := bytes.Count(data, []byte("\n")); n == 1 && bytes.HasSuffix(data, []byte("\n")) {
		a.log.Warn("the value read from standard input ends with a newline, which is kept; pipe it with printf %s to leave it out", "secret", c.Name)
	}
	return string(data), nil
}

// prompt asks for the value twice on the terminal, without echo.
func (c *setCmd) prompt(a *app) (string, error) {
	fd := int(a.stdin.Fd())
	first, err := readHidden(a, fd, fmt.Sprintf("runsecrets: value of %s (not echoed): ", c.Name))
	if err != nil {
		return "", err
	}
	if len(first) == 0 {
		return "", usage(errors.New("no value typed"), "type the value, then Enter")
	}
	again, err := readHidden(a, fd, "runsecrets: the same again, to confirm: ")
	if err != nil {
		return "", err
	}
	if !bytes.Equal(first, again) {
		return "", usage(errors.New("the two values typed differ"), "run it again and type the same value twice")
	}
	return string(first), nil
}

// readHidden reads one line from the terminal fd with echo off. An
// interrupt while it waits restores the terminal before the process dies of
// it, so the shell is not left without echo.
func readHidden(a *app, fd int, prompt string) ([]byte, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("cannot use the terminal: %w", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case s := <-sig:
			term.Restore(fd, state)
			fmt.Fprintln(a.stderr)
			signal.Reset(os.Interrupt, syscall.SIGTERM)
			if p, err := os.FindProcess(os.Getpid()); err == nil {
				p.Signal(s)
			}
		case <-done:
		}
	})
	defer func() {
		signal.Stop(sig)
		close(done)
		wg.Wait()
	}()
	fmt.Fprint(a.stderr, prompt)
	line, err := term.ReadPassword(fd)
	fmt.Fprintln(a.stderr)
	if err != nil {
		return nil, fmt.Errorf("cannot read the value from the terminal: %w", err)
	}
	return line, nil
}

// batchItem is one KEY=value of set --dotenv.
type batchItem struct {
	key, name, value string
	line             int
	result           string // the new version, or "" when not set
	err              error
	cause            string     // why it was not set, for the summary
	sameAs           *batchItem // a key naming the same secret with the same value
}

// batch sets every KEY=value of a dotenv file (SDK v1's set_secrets).
func (c *setCmd) batch(ctx context.Context, a *app, opts resolve.SetOptions) error {
	data, err := os.ReadFile(c.Dotenv)
	if err != nil {
		return usage(fmt.Errorf("--dotenv %s: %v", c.Dotenv, unwrapPath(err)), "check the path")
	}
	ef, err := resolve.ParseDotenv(c.Dotenv, data)
	if err != nil {
		return err
	}
	if len(ef.Entries) == 0 {
		return usage(fmt.Errorf("--dotenv %s: no KEY=value lines", c.Dotenv), "write one line per secret, such as DB_PASS=...")
	}
	rc, err := a.detect()
	if err != nil {
		return err
	}
	items := make([]*batchItem, len(ef.Entries))
	byName := map[string]*batchItem{}
	var todo []*batchItem
	for i, e := range ef.Entries {
		it := &batchItem{key: e.Key, name: resolve.SecretNameFor(e.Key), value: e.Value, line: e.Line}
		items[i] = it
		bad := func(kind resolve.Kind, err error) {
			it.err = &kindError{kind, fmt.Errorf("%s (%s:%d): %w", it.key, c.Dotenv, it.line, err)}
			it.cause = oneLine(err.Error())
		}
		if reason, _ := resolve.CheckName(it.name); reason != "" {
			bad(resolve.KindUsage, withHint(fmt.Errorf("invalid secret name %q: %s", it.name, reason), "write the key with letters, digits and '_' only (DB_PASS sets db-pass)"))
			continue
		}
		if err := resolve.CheckValue(it.value); err != nil {
			bad(resolve.KindUsage, valueError(it.name, it.value, err))
			continue
		}
		if prev, ok := byName[it.name]; ok {
			if prev.value == it.value {
				it.sameAs = prev
				continue
			}
			bad(resolve.KindUsage, withHint(fmt.Errorf("secret %s is also set by %s on line %d, with another value", it.name, prev.key, prev.line), "keep one of the two lines"))
			continue
		}
		byName[it.name] = it
		todo = append(todo, it)
	}
	where := rc.VaultURL
	if rc.Kind == runctx.KindLocalFile {
		where = rc.SecretsFile
		c.warnLocal(a)
		var updates []resolve.Update
		var writing []*batchItem
		for _, it := range todo {
			if _, err := resolve.DotenvValue(it.value); err != nil {
				it.err = fmt.Errorf("%s (%s:%d): secret %s: %w", it.key, c.Dotenv, it.line, it.name, localError(err))
				it.cause = err.Error()
				continue
			}
			updates = append(updates, resolve.Update{Name: it.name, Value: it.value})
			writing = append(writing, it)
		}
		if len(updates) > 0 {
			err := resolve.SetLocal(rc.SecretsFile, updates)
			for _, it := range writing {
				if err != nil {
					it.err, it.cause = localError(err), oneLine(err.Error())
				} else {
					it.result = "set in " + rc.SecretsFile
				}
			}
		}
	} else if len(todo) > 0 {
		if err := c.setAll(ctx, a, rc, todo, opts); err != nil {
			return err
		}
	}
	return c.summary(a, items, where)
}

// setAll sets the items in the vault: the first alone, so that it draws the
// vault's challenge and the token, then the rest, --concurrency at a time.
func (c *setCmd) setAll(ctx context.Context, a *app, rc *runctx.Context, todo []*batchItem, opts resolve.SetOptions) error {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	kv, err := a.keyVault(ctx, rc, max(c.Concurrency, 1))
	if err != nil {
		return err
	}
	set := func(it *batchItem) {
		s, f := kv.Set(ctx, rc.VaultURL, it.name, it.value, opts)
		if f != nil {
			it.err = &kindError{f.Kind, fmt.Errorf("%s (%s:%d): %w", it.key, c.Dotenv, it.line, a.failed(it.name, rc.VaultURL, f))}
			it.cause = f.Cause
			return
		}
		it.result = s.Version
	}
	set(todo[0])
	sem := make(chan struct{}, max(c.Concurrency, 1))
	var wg sync.WaitGroup
	for _, it := range todo[1:] {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			set(it)
		})
	}
	wg.Wait()
	return nil
}

// summary prints one line per key and returns the failures, if any.
func (c *setCmd) summary(a *app, items []*batchItem, where string) error {
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	var errs resolve.Errors
	var okNames []string
	for _, it := range items {
		res := it.result
		switch {
		case it.sameAs != nil && it.sameAs.err == nil:
			res = it.sameAs.result + " (same as " + it.sameAs.key + ")"
		case it.sameAs != nil:
			res = "not set (see " + it.sameAs.key + ")"
		case it.err != nil:
			res = "not set: " + it.cause
			kind := resolve.KindConfig
			if k := (interface{ Kind() resolve.Kind })(nil); errors.As(it.err, &k) {
				kind = k.Kind()
			}
			errs = append(errs, &kindError{kind, it.err})
		default:
			okNames = append(okNames, it.name)
		}
		fmt.Fprintf(tw, "%s\t%s\n", it.name, res)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(errs) == 0 {
		a.log.Info(fmt.Sprintf("set %d secrets in %s", len(okNames), where))
		return nil
	}
	stay := "no secret was set"
	switch len(okNames) {
	case 0:
	case 1:
		stay = fmt.Sprintf("the other secret was set and stays set (%s); running it again sets it again", okNames[0])
	default:
		stay = fmt.Sprintf("the other %d secrets were set and stay set (%s); running it again sets them again", len(okNames), strings.Join(okNames, ", "))
	}
	// report prints each hint once, in order: the summary goes with the
	// last failure, so it comes after every other hint.
	last := errs[len(errs)-1].(*kindError)
	errs[len(errs)-1] = &kindError{last.kind, withHint(last.err, hintOf(last.err)+"\n"+stay)}
	return errs
}

// hintOf is the hint report would print for err.
func hintOf(err error) string {
	var (
		h  *hinted
		fi *resolve.FileError
	)
	switch {
	case errors.As(err, &h):
		return h.hint
	case errors.As(err, &fi):
		return fi.Hint
	}
	return ""
}
