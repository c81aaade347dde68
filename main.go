// Command runsecrets hands secrets to a program: it resolves where it runs
// (a local secrets file, an explicit Key Vault, an Azure ML job, a workspace
// config), fetches every mapped secret concurrently, and executes the
// program with the values in its environment only.
//
//	runsecrets exec --map DB_PASS=db-pass -- python train.py
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/runsecrets/runsecrets/launcher"
	"github.com/runsecrets/runsecrets/resolve"
	"github.com/runsecrets/runsecrets/runctx"
)

// cli holds the global flags; the commands are added by newParser.
type cli struct {
	LogLevel string        `enum:"error,warn,info,debug" default:"warn" env:"RUNSECRETS_LOG_LEVEL" help:"How much runsecrets says on stderr: error, warn, info or debug. No level prints a secret value or a token."`
	Timeout  time.Duration `default:"60s" env:"RUNSECRETS_TIMEOUT" help:"Time allowed to find the context, get a token and fetch every secret; throttling is retried until it runs out."`
	Version  versionFlag   `help:"Print the version and exit."`
	contextFlags
}

// commands are runsecrets' commands, in the order help lists them.
var commands = []struct {
	name, help string
	new        func() any
}{
	{"exec", "Fetch the mapped secrets and run COMMAND with them in its environment.", func() any { return &execCmd{} }},
	{"context", "Show where runsecrets runs: the vault, workspace, identity and where each came from.", func() any { return &contextCmd{} }},
	{"check", "Fetch every mapping as exec would and report each secret's metadata (never a value); exit 83 on any problem.", func() any { return &checkCmd{} }},
	{"set", "Store a secret (a new version if it exists) from --from-env, --from-file, standard input or a prompt; never from the command line.", func() any { return &setCmd{} }},
	{"list", "List the secret names of the vault (never values).", func() any { return &listCmd{} }},
	{"get", "Print secrets as dotenv lines, or one value with --raw; refuses a terminal unless --reveal.", func() any { return &getCmd{} }},
}

// newParser builds the command line parser with every command, or with the
// one named only.
func newParser(c *cli, only string) *kong.Kong {
	opts := []kong.Option{
		kong.Name("runsecrets"),
		kong.Description("Hand Azure Key Vault secrets to a program through its environment, offline or in an Azure ML job."),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	}
	for _, cmd := range commands {
		if only == "" || cmd.name == only {
			opts = append(opts, kong.DynamicCommand(cmd.name, cmd.help, "", cmd.new()))
		}
	}
	parser, err := kong.New(c, opts...)
	if err != nil {
		panic(err) // a malformed command struct: a bug, caught by every test
	}
	return parser
}

// parse parses args. Kong builds its model by reflection over every command
// and flag, which costs more than the rest of an offline exec (an
// entrypoint's start is on every job's critical path). So when args name a
// command, a parser with that command alone is tried first: its grammar is
// a part of the full one, so what it accepts means the same. Anything it
// refuses (help, typos, a command name used as a flag's value) goes to the
// full parser, which gives the real answer.
func parse(args []string) (*cli, *kong.Context, error) {
	if helpOrVersion(args) {
		return parseAll(args)
	}
	for _, arg := range args {
		if arg == "--" {
			break
		}
		for _, cmd := range commands {
			if arg == cmd.name {
				var c cli
				if kctx, err := newParser(&c, cmd.name).Parse(args); err == nil {
					return &c, kctx, nil
				}
				return parseAll(args)
			}
		}
	}
	return parseAll(args)
}

func parseAll(args []string) (*cli, *kong.Context, error) {
	var c cli
	kctx, err := newParser(&c, "").Parse(args)
	return &c, kctx, err
}

// helpOrVersion reports args that ask for help or the version, whose output
// must come from the full parser.
func helpOrVersion(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "--help", "--version":
			return true
		}
	}
	return false
}

// versionFlag is kong.VersionFlag without the ${version} variable, which
// kong would interpolate into every flag on every start (and which needs
// the build info read): the version is worked out only when asked for.
type versionFlag bool

// BeforeReset prints the version and exits, before any other flag is
// checked, as kong.VersionFlag does.
func (versionFlag) BeforeReset(app *kong.Kong) error {
	fmt.Fprintln(app.Stdout, "runsecrets "+versionString())
	app.Exit(0)
	return nil
}

// version is set by -ldflags "-X main.version=..." in release builds.
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func main() {
	c, kctx, err := parse(os.Args[1:])
	if err != nil {
		os.Exit(report(os.Stderr, nil, usageError(err)))
	}
	log := newLogger(os.Stderr, c.LogLevel)
	ctx, cancel := context.WithCancel(context.Background())
	a := &app{
		log: log, stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin,
		environ: os.Environ(), lookup: os.LookupEnv,
		timeout: c.Timeout, where: c.contextFlags, kctx: kctx, cancel: cancel,
	}
	kctx.BindTo(ctx, (*context.Context)(nil))
	err = kctx.Run(a)
	a.stopSignals()
	if sig := a.interrupted.Load(); sig != nil && err != nil {
		// Whatever the interrupted request reported, the cause is the signal.
		name := "SIGTERM"
		if *sig == os.Interrupt {
			name = "SIGINT"
		}
		err = &exitError{exitInterrupted, fmt.Errorf("interrupted by %s before the command started", name)}
	}
	os.Exit(report(os.Stderr, log, err))
}

// app is what every command gets from main: the process's environment and
// streams, the logger, and the global settings.
type app struct {
	log            *slog.Logger
	stdout, stderr io.Writer
	stdin          *os.File
	environ        []string
	lookup         func(string) (string, bool)
	timeout        time.Duration
	kctx           *kong.Context
	// where are the global flags that say where runsecrets runs.
	where contextFlags

	// cancel ends the context of the command; SIGINT and SIGTERM call it
	// once watchSignals has run.
	cancel      context.CancelFunc
	signals     chan os.Signal
	interrupted atomic.Pointer[os.Signal]
}

// watchSignals makes SIGINT and SIGTERM cancel the command's context. The
// commands call it before the first network request; the offline path
// never blocks and never starts it, which keeps a thread (and half a
// millisecond) out of every offline exec.
func (a *app) watchSignals() {
	if a.signals != nil {
		return
	}
	a.signals = make(chan os.Signal, 1)
	signal.Notify(a.signals, os.Interrupt, syscall.SIGTERM)
	go func(ch chan os.Signal) {
		if sig, ok := <-ch; ok {
			a.interrupted.Store(&sig)
			a.cancel()
		}
	}(a.signals)
}

// stopSignals restores the default signal handling: before execve, so the
// child starts with no handler of ours, and at exit.
func (a *app) stopSignals() {
	if a.signals != nil {
		signal.Stop(a.signals)
		close(a.signals)
		a.signals = nil
	}
}

// exitError carries the exit status of SPEC §8. A nil err exits silently
// (the child's own status).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// ExitCode implements kong.ExitCoder.
func (e *exitError) ExitCode() int { return e.code }

// The exit statuses of SPEC §8.
const (
	exitUsage         = 80
	exitNoContext     = 81
	exitDenied        = 82
	exitMissing       = 83
	exitUnavailable   = 100
	exitNotExecutable = 126
	exitNotFound      = 127
	exitInterrupted   = 130
)

// exitCode is the one table from errors to exit statuses.
func exitCode(err error) int {
	var (
		ee   *exitError
		pe   *kong.ParseError
		rk   interface{ Kind() resolve.Kind }
		re   *runctx.Error
		se   *launcher.StartError
		nule *launcher.NULError
		name *launcher.NameError
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &pe):
		return exitUsage
	case errors.As(err, &re):
		switch re.Class {
		case runctx.ClassUsage:
			return exitUsage
		case runctx.ClassConfig:
			return exitNoContext
		case runctx.ClassDenied:
			return exitDenied
		}
		return exitUnavailable
	case errors.As(err, &rk):
		switch rk.Kind() {
		case resolve.KindUsage:
			return exitUsage
		case resolve.KindConfig:
			return exitNoContext
		case resolve.KindDenied:
			return exitDenied
		case resolve.KindMissing:
			return exitMissing
		}
		return exitUnavailable
	case errors.As(err, &se):
		if se.Kind == launcher.CommandNotFound {
			return exitNotFound
		}
		return exitNotExecutable
	case errors.As(err, &nule):
		if nule.Layer == launcher.LayerSecret {
			return exitMissing
		}
		return exitUsage
	case errors.As(err, &name):
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	}
	return 1
}

// usageError marks an error of the command line.
func usageError(err error) error {
	msg := err.Error()
	var pe *kong.ParseError
	inExec := errors.As(err, &pe) && pe.Context != nil && strings.HasPrefix(pe.Context.Command(), "exec")
	if inExec && (strings.Contains(msg, "unknown flag") || strings.Contains(msg, "unexpected argument")) {
		err = withHint(err, "put the program after --: runsecrets exec [flags] -- COMMAND [ARG...]")
	}
	return &exitError{code: exitUsage, err: err}
}

// hinted is an error with a hint for the user.
type hinted struct {
	error
	hint string
}

func (h *hinted) Unwrap() error { return h.error }

func withHint(err error, hint string) error { return &hinted{err, hint} }

// report prints err the way SPEC §8 says (lower case, prefixed, one
// failure a line, then the hints) and returns the exit status.
func report(w io.Writer, log *slog.Logger, err error) int {
	code := exitCode(err)
	var ee *exitError
	if err == nil || errors.As(err, &ee) && ee.err == nil {
		return code
	}
	var hints []string
	addHint := func(h string) {
		for line := range strings.SplitSeq(h, "\n") {
			if line = strings.TrimSpace(line); line != "" && !slices.Contains(hints, line) {
				hints = append(hints, line)
			}
		}
	}
	for _, e := range leaves(err) {
		fmt.Fprintf(w, "runsecrets: error: %s\n", oneLine(e.Error()))
		var (
			h    *hinted
			fe   *resolve.FetchError
			me   *resolve.MappingError
			fi   *resolve.FileError
			re   *runctx.Error
			se   *launcher.StartError
			nule *launcher.NULError
		)
		switch {
		case errors.As(e, &h):
			addHint(h.hint)
		case errors.As(e, &fe):
			addHint(fe.Hint)
			if log != nil && fe.Detail != "" {
				log.Debug("service answer", "env", fe.Env, "detail", fe.Detail)
			}
		case errors.As(e, &me):
			addHint(me.Hint)
		case errors.As(e, &fi):
			addHint(fi.Hint)
		case errors.As(e, &re):
			addHint(re.Hint())
			if log != nil && re.Err != nil {
				log.Debug("underlying error", "detail", re.Err.Error())
			}
		case errors.As(e, &se):
			addHint(se.Hint())
		case errors.As(e, &nule):
			addHint("an environment variable cannot hold a NUL byte: get the value as a file with --file ENV=REF, or store it base64-encoded")
		}
	}
	for _, h := range hints {
		fmt.Fprintf(w, "runsecrets: hint: %s\n", h)
	}
	return code
}

// leaves flattens errors that hold several failures (resolve.Errors).
func leaves(err error) []error {
	var many interface{ Unwrap() []error }
	if errors.As(err, &many) {
		var out []error
		for _, e := range many.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// logHandler writes records to stderr as SPEC §8 says: prefixed
// "runsecrets:", a level word for all but info, then key=value pairs.
type logHandler struct {
	w     io.Writer
	level slog.Level
	attrs []slog.Attr
}

func newLogger(w io.Writer, level string) *slog.Logger {
	l := slog.LevelWarn
	switch level {
	case "error":
		l = slog.LevelError
	case "info":
		l = slog.LevelInfo
	case "debug":
		l = slog.LevelDebug
	}
	return slog.New(&logHandler{w: w, level: l})
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("runsecrets: ")
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	case r.Level < slog.LevelInfo:
		b.WriteString("debug: ")
	}
	b.WriteString(r.Message)
	write := func(a slog.Attr) bool {
		v := a.Value.Resolve().String()
		if strings.ContainsAny(v, " \t\n\"=") {
			v = fmt.Sprintf("%q", v)
		}
		b.WriteString(" " + a.Key + "=" + v)
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	b.WriteString("\n")
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logHandler{w: h.w, level: h.level, attrs: append(slices.Clip(h.attrs), attrs...)}
}

func (h *logHandler) WithGroup(string) slog.Handler { return h }
