package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/runsecrets/runsecrets/launcher"
	"github.com/runsecrets/runsecrets/resolve"
	"github.com/runsecrets/runsecrets/runctx"
)

// mappingFlags are the mapping sources of SPEC §3; exec and check share them.
type mappingFlags struct {
	Map         []string `short:"m" sep:"none" placeholder:"ENV=REF" help:"Set variable ENV to secret REF (repeatable). --map ENV alone means the secret named ENV in lower case with '-' for '_' (DB_PASS → db-pass)."`
	MapFile     []string `sep:"none" placeholder:"FILE" help:"A dotenv file of ENV=REF lines (repeatable)."`
	EnvFile     []string `sep:"none" placeholder:"FILE" help:"A dotenv file of plain variables for the child (repeatable, later files win); keyvault:REF values in it are resolved."`
	NoEnvRefs   bool     `help:"Leave keyvault:REF and @Microsoft.KeyVault(...) values in the environment and env files as they are."`
	File        []string `sep:"none" placeholder:"ENV=REF" help:"Write secret REF to a private file (mode 0600, in a fresh 0700 directory on /dev/shm when there is one) and set ENV to its path (repeatable): for PEMs, key files, JSON credentials."`
	Concurrency int      `default:"64" env:"RUNSECRETS_CONCURRENCY" help:"Requests in flight at once."`
	Lock        string   `placeholder:"FILE" help:"Pin every mapping to the secret version recorded in this manifest (written by --manifest)."`
}

type execCmd struct {
	mappingFlags
	NoOverride       bool          `help:"Keep a variable that is already set instead of replacing it with its secret (and skip that fetch)."`
	DryRun           bool          `help:"Print the plan and the context; fetch nothing, run nothing."`
	Manifest         string        `env:"RUNSECRETS_MANIFEST_OUT" placeholder:"FILE" help:"Write a JSON record of the secret versions this run uses (no values) before the command starts; the command gets its path in RUNSECRETS_MANIFEST."`
	Supervise        bool          `xor:"supervise" help:"Stay as the command's parent: forward signals, reap zombies, exit with its status. Automatic when runsecrets is PID 1."`
	NoSupervise      bool          `xor:"supervise" help:"Replace runsecrets with the command (execve), even as PID 1."`
	Mask             bool          `help:"Replace every secret value (4 bytes or more) in the command's stdout and stderr with *****. Implies --supervise."`
	Grace            time.Duration `default:"10s" env:"RUNSECRETS_GRACE" help:"In supervise mode, how long the command may take to exit after a forwarded SIGTERM or SIGINT before its process group is killed."`
	ScrubCredentials bool          `help:"Remove the variables runsecrets can authenticate with (AZURE_CLIENT_SECRET, MSI_SECRET, ...) from the command's environment."`
	Command          []string      `arg:"" optional:"" passthrough:"partial" placeholder:"-- COMMAND [ARG...]" help:"The program to run and its arguments, after --."`
}

func (c *execCmd) Run(ctx context.Context, a *app) error {
	argv := c.Command
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 && !c.DryRun {
		return &exitError{exitUsage, withHint(errors.New("no command to run"), "runsecrets exec [flags] -- COMMAND [ARG...]")}
	}
	if c.Mask && c.NoSupervise {
		return &exitError{exitUsage, withHint(errors.New("--mask needs supervise mode"), "drop --no-supervise: masking filters the command's output, so runsecrets must stay its parent")}
	}
	maps, envFiles, err := a.mappings(c.mappingFlags)
	if err != nil {
		return err
	}
	if c.NoOverride {
		maps = a.keepExisting(maps, envFiles)
	}
	rc, err := a.detectFor(maps)
	if err != nil {
		return err
	}
	if maps, err = a.pin(rc, maps, c.Lock); err != nil {
		return err
	}
	if c.DryRun {
		return a.printPlan(rc, maps)
	}
	values, err := a.fetch(ctx, rc, maps, c.Concurrency)
	if err != nil {
		return err
	}
	child := childSpec{envFiles: envFiles, values: values, scrub: c.ScrubCredentials}
	if c.Manifest != "" {
		path, err := a.writeManifest(c.Manifest, rc, values)
		if err != nil {
			return err
		}
		child.runtime = append(child.runtime, launcher.Var{Name: "RUNSECRETS_MANIFEST", Value: path})
	}
	env, dir, err := a.childEnv(child)
	if err != nil {
		return err
	}
	removeFiles := func() {
		if dir != "" {
			if err := launcher.RemoveFiles(dir); err != nil {
				a.log.Warn("cannot remove the --file directory", "dir", dir, "error", err)
			}
		}
	}
	a.stopSignals()
	if c.Supervise || c.Mask || os.Getpid() == 1 && !c.NoSupervise {
		a.log.Debug("supervising", "command", argv[0], "mask", c.Mask, "grace", c.Grace)
		spec := launcher.RunSpec{Argv: argv, Env: env, Grace: c.Grace,
			Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, OnExit: removeFiles}
		if c.Mask {
			for _, v := range values {
				spec.Mask = append(spec.Mask, []byte(v.Secret.Value))
			}
		}
		code, err := launcher.Supervise(ctx, spec)
		if err != nil {
			return err
		}
		return &exitError{code: code}
	}
	// execve: on success nothing returns, and the --file directory stays
	// for the command, which alone knows when it is done with the files.
	code, err := launcher.Exec(argv, env)
	if err != nil {
		removeFiles()
		return err
	}
	return &exitError{code: code}
}

// pin applies --lock: every mapping gets the version the manifest recorded.
func (a *app) pin(rc *runctx.Context, maps []resolve.Mapping, lock string) ([]resolve.Mapping, error) {
	if lock == "" {
		return maps, nil
	}
	if rc != nil && rc.Kind == runctx.KindLocalFile {
		return nil, &exitError{exitUsage, withHint(errors.New("--lock cannot be checked against a local secrets file, which has no versions"),
			"run with the vault the lock was recorded against, or drop --lock for an offline run")}
	}
	data, err := os.ReadFile(lock)
	if err != nil {
		return nil, &exitError{exitUsage, withHint(fmt.Errorf("--lock %s: %v", lock, unwrapPath(err)), "give a manifest written by --manifest")}
	}
	m, err := resolve.ReadManifest(lock, data)
	if err != nil {
		return nil, err
	}
	pinned, err := m.Pin(maps, lock)
	if err != nil {
		return nil, err
	}
	for _, p := range pinned {
		a.log.Debug("pinned by the lock", "env", p.Env, "secret", p.Ref.Name, "version", p.Ref.Version)
	}
	return pinned, nil
}

// writeManifest records the run's secret versions (never values) and
// returns the manifest's absolute path for the command.
func (a *app) writeManifest(path string, rc *runctx.Context, values []resolve.Value) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	mc := resolve.ManifestContext{Kind: "none"}
	if rc != nil {
		mc.Kind, mc.SecretsFile = string(rc.Kind), rc.SecretsFile
		if ws := rc.Workspace; ws != nil {
			mc.Workspace = map[string]string{"subscription_id": ws.SubscriptionID, "resource_group": ws.ResourceGroup, "workspace_name": ws.Name}
		}
		if rc.Kind != runctx.KindLocalFile {
			mc.IdentityKind = string(rc.Identity.Kind)
		}
	}
	if err := resolve.WriteManifest(abs, resolve.NewManifest(mc, values, time.Now())); err != nil {
		return "", &exitError{exitUsage, withHint(err, "--manifest needs a writable path")}
	}
	a.log.Info("manifest written", "path", abs, "secrets", len(values))
	return abs, nil
}

// mappings reads every mapping source and merges them.
func (a *app) mappings(f mappingFlags) ([]resolve.Mapping, []resolve.EnvFile, error) {
	var errs resolve.Errors
	read := func(paths []string, flag string) []resolve.EnvFile {
		var out []resolve.EnvFile
		for _, p := range paths {
			data, err := os.ReadFile(p)
			if err != nil {
				errs = append(errs, withHint(fmt.Errorf("%s %s: %v", flag, p, unwrapPath(err)), "check the path"))
				continue
			}
			ef, err := resolve.ParseDotenv(p, data)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out = append(out, ef)
		}
		return out
	}
	mapFiles := read(f.MapFile, "--map-file")
	envFiles := read(f.EnvFile, "--env-file")
	if len(errs) > 0 {
		return nil, nil, &exitError{exitUsage, errs}
	}
	rsMap, _ := a.lookup("RUNSECRETS_MAP")
	maps, err := resolve.Collect(resolve.Sources{
		Maps:          f.Map,
		Files:         f.File,
		MapFiles:      mapFiles,
		RunsecretsMap: rsMap,
		Environ:       a.environ,
		EnvFiles:      envFiles,
		NoEnvRefs:     f.NoEnvRefs,
	})
	return maps, envFiles, err
}

// keepExisting drops the mappings of variables that the environment or an
// env file already sets (--no-override): their value stays, unfetched.
func (a *app) keepExisting(maps []resolve.Mapping, envFiles []resolve.EnvFile) []resolve.Mapping {
	set := map[string]bool{}
	for _, kv := range a.environ {
		if k, _, ok := strings.Cut(kv, "="); ok && !strings.HasPrefix(k, "RUNSECRETS_") {
			set[k] = true
		}
	}
	for _, f := range envFiles {
		for _, e := range f.Entries {
			set[e.Key] = true
		}
	}
	var out []resolve.Mapping
	for _, m := range maps {
		if set[m.Env] && !isEnvRef(m) {
			a.log.Info("keeping the value already set (--no-override)", "env", m.Env)
			continue
		}
		out = append(out, m)
	}
	return out
}

// isEnvRef reports a mapping that is a variable's own keyvault: value.
func isEnvRef(m resolve.Mapping) bool {
	return m.From.Source == "environment" || m.From.Source == "--env-file"
}

// detectFor resolves the run context when there is something to fetch.
func (a *app) detectFor(maps []resolve.Mapping) (*runctx.Context, error) {
	rc, err := a.detect()
	var re *runctx.Error
	if len(maps) == 0 && errors.As(err, &re) && re.Class == runctx.ClassConfig {
		// Nothing to fetch: no context is needed.
		a.log.Info("no mappings; running the command without secrets")
		return nil, nil
	}
	return rc, err
}

// fetch resolves every mapping to its value within --timeout, all or
// nothing.
func (a *app) fetch(ctx context.Context, rc *runctx.Context, maps []resolve.Mapping, concurrency int) ([]resolve.Value, error) {
	outcomes, err := a.fetchEach(ctx, rc, maps, concurrency, 0)
	if err != nil {
		return nil, err
	}
	return resolve.Values(outcomes)
}

// fetchEach fetches every mapping within --timeout and returns each one's
// outcome; exec (through fetch) and check share it, so check proves what
// exec would get. validFor is check's --expires-within. The error is for
// what stops every fetch: the provider, the identity, the vault discovery.
func (a *app) fetchEach(ctx context.Context, rc *runctx.Context, maps []resolve.Mapping, concurrency int, validFor time.Duration) ([]resolve.Outcome, error) {
	if len(maps) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	start := time.Now()
	p, err := a.provider(ctx, rc, concurrency)
	if err != nil {
		return nil, err
	}
	plan := resolve.Plan(maps, rc.VaultURL, rc.Cloud.VaultSuffix)
	for _, m := range plan {
		a.log.Debug("mapping", "env", m.Env, "secret", m.ID.Name, "version", orLatest(m.ID.Version), "vault", vaultOf(rc, m.ID.Vault), "from", m.From.String())
	}
	outcomes := resolve.FetchEach(ctx, plan, p, time.Now(), validFor)
	var values []resolve.Value
	for _, o := range outcomes {
		if o.Err != nil {
			continue
		}
		values = append(values, resolve.Value{Planned: o.Planned, Secret: o.Secret})
		a.log.Debug("resolved", "env", o.Env, "secret", o.Secret.Name, "version", orLatest(o.Secret.Version), "vault", vaultOf(rc, o.ID.Vault))
	}
	if len(values) == len(outcomes) {
		a.log.Info(fmt.Sprintf("fetched %d secrets for %d variables", distinct(values), len(values)), "took", time.Since(start).Round(time.Millisecond))
	}
	return outcomes, nil
}

func distinct(values []resolve.Value) int {
	seen := map[resolve.SecretID]bool{}
	for _, v := range values {
		seen[v.ID] = true
	}
	return len(seen)
}

func orLatest(v string) string {
	if v == "" {
		return "latest"
	}
	return v
}

// vaultOf names where a secret is served from, for plans and logs.
func vaultOf(rc *runctx.Context, vault string) string {
	switch {
	case rc.Kind == runctx.KindLocalFile:
		return rc.SecretsFile
	case vault == "":
		return "(the workspace's default vault)"
	}
	return vault
}

// childSpec is what the child's environment is made of besides the
// inherited environment.
type childSpec struct {
	envFiles []resolve.EnvFile
	values   []resolve.Value
	runtime  []launcher.Var
	scrub    bool
}

// childEnv builds the child's environment, writes the --file values to
// their private directory (returned, "" when there is none), and warns
// about overrides.
func (a *app) childEnv(c childSpec) ([]string, string, error) {
	spec := launcher.EnvSpec{Inherited: a.environ, Runtime: c.runtime}
	for _, f := range c.envFiles {
		for _, e := range f.Entries {
			spec.Files = append(spec.Files, launcher.Var{Name: e.Key, Value: e.Value})
		}
	}
	if c.scrub {
		spec.Scrub = runctx.CredentialVars
	}
	own := map[string]bool{}
	var files []launcher.File
	for _, v := range c.values {
		own[v.Env] = isEnvRef(v.Mapping)
		if v.AsFile {
			files = append(files, launcher.File{Env: v.Env, Value: []byte(v.Secret.Value)})
			continue
		}
		spec.Secrets = append(spec.Secrets, launcher.Var{Name: v.Env, Value: v.Secret.Value})
	}
	var dir string
	if len(files) > 0 {
		var vars []launcher.Var
		var err error
		if dir, vars, err = launcher.WriteFiles([]string{"/dev/shm", os.TempDir()}, files); err != nil {
			return nil, "", &exitError{exitUsage, withHint(err, "--file needs a writable /dev/shm or temporary directory (TMPDIR)")}
		}
		a.log.Debug("secret files written", "dir", dir, "files", len(files))
		spec.Secrets = append(spec.Secrets, vars...)
	}
	env, err := launcher.BuildEnv(spec)
	if err != nil {
		if dir != "" {
			launcher.RemoveFiles(dir)
		}
		return nil, "", err
	}
	for _, name := range env.Overridden {
		if !own[name] {
			a.log.Warn(name+" was already set; its secret replaces it (--no-override keeps it)", "env", name)
		}
	}
	return env.Vars, dir, nil
}

// printPlan prints what exec would do, without fetching or running.
func (a *app) printPlan(rc *runctx.Context, maps []resolve.Mapping) error {
	w := a.stdout
	if rc == nil {
		fmt.Fprintln(w, "context:  none needed (no mappings)")
	} else {
		where := rc.VaultURL
		switch rc.Kind {
		case runctx.KindLocalFile:
			where = rc.SecretsFile
		case runctx.KindAzureMLJob, runctx.KindWorkspaceConfig:
			if where == "" {
				where = fmt.Sprintf("default vault of workspace %s, read from Azure Resource Manager at run time", rc.Workspace.Name)
			}
		}
		fmt.Fprintf(w, "context:  %s, %s (from %s)\n", rc.Kind, where, rc.Sources[runctx.FactKind])
		if rc.Kind != runctx.KindLocalFile {
			fmt.Fprintf(w, "identity: %s\n", rc.Identity.Tries)
		}
	}
	if len(maps) == 0 {
		fmt.Fprintln(w, "no mappings")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ENV\tREFERENCE\tVAULT\tVERSION\tFROM")
	var vault, suffix string
	if rc != nil {
		vault, suffix = rc.VaultURL, rc.Cloud.VaultSuffix
	}
	for _, m := range resolve.Plan(maps, vault, suffix) {
		env := m.Env
		if m.AsFile {
			env += " (file)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", env, m.Written, vaultOf(rc, m.ID.Vault), orLatest(m.ID.Version), m.From)
	}
	return tw.Flush()
}
