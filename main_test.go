package main

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/runsecrets/runsecrets/resolve/vaulttest"
	"github.com/runsecrets/runsecrets/runctx/azuretest"
)

// TestMain lets testscript run this test binary as the runsecrets command:
// each `exec runsecrets` in a script is a separate process running main.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"runsecrets": main})
}

// TestScripts runs testdata/script/*.txtar end to end. Each script gets its
// own fake Azure, reached only through HTTPS_PROXY and SSL_CERT_FILE, and
// these variables:
//
//	REPO             the repository root (for testdata/demo.env)
//	TENANT           the fake's tenant id
//	FAKE_MSI_ENDPOINT, FAKE_MSI_SECRET   the Azure ML managed-identity endpoint
//
// and these commands to arrange and observe the fake:
//
//	azure client TENANT CLIENT SECRET      register a service principal
//	azure identity CLIENT                  register a user-assigned managed identity
//	azure workspace SUB RG NAME VAULT      a workspace whose default vault is VAULT
//	azure deny-workspace SUB RG NAME       a workspace the identity may not read
//	azure fail-arm|fail-token|fail-msi N STATUS
//	azure token-latency|msi-latency DURATION
//	azure count HOST-SUFFIX                print how many requests went there
//	azure reset                            clear the request log and counters
//	vault set VAULT NAME VALUE [OPTION...] set a secret; $VERSION holds the new version
//	vault setfile VAULT NAME FILE [OPTION...]
//	    options: disabled, expires=WHEN, nbf=WHEN (a duration from now, or RFC 3339),
//	    type=CONTENT-TYPE, tag=K=V, created=RFC3339 (created and updated, for goldens)
//	vault get VAULT NAME                   print the current value, byte for byte
//	vault show VAULT NAME                  print the current version's attributes and the version count
//	vault pagesize N                       serve listings N secrets a page
//	vault fill VAULT PREFIX N              set secrets PREFIX-1 … PREFIX-N, each holding its own name
//	vault disable|delete-version VAULT NAME VERSION
//	vault fault VAULT NAME STATUS|reset|close|truncate|html [TIMES] [RETRY-AFTER]
//	vault clear-faults                     disarm every fault
//	vault latency DURATION
//	vault tenant VAULT TENANT              make VAULT's challenge name another tenant
//	vault throttle LIMIT WINDOW [retry-after]
//	vault stats                            print requests, challenges, throttled, peak
//	exits N COMMAND [ARG...]               run COMMAND like exec; its exit status must be N
//	waitfile FILE                          wait (up to 20 s) until FILE exists
//	signal [-child] SIGNAL                 send SIGNAL (TERM, INT, HUP, QUIT, USR1, USR2, WINCH)
//	                                       to the newest background command, or to its first child
//	bgexit N                               after wait: the command last signalled exited N
//	zombies PIDFILE                        print the zombie children of the pid in PIDFILE
//	childpid FILE                          write the pid of the newest background command's first child
//	leakscan TEXT DIR... [-except FILE...] fail if any file under the DIRs contains TEXT
//
// and this condition:
//
//	[pidns]  new PID namespaces can be made (unshare --pid --fork --mount-proc works)
func TestScripts(t *testing.T) {
	repo, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Condition:           scriptCondition,
		Setup: func(env *testscript.Env) error {
			az, err := azuretest.Start()
			if err != nil {
				return err
			}
			env.Defer(az.Close)
			ca := filepath.Join(env.WorkDir, ".azure-ca.pem")
			if err := az.WriteCA(ca); err != nil {
				return err
			}
			for _, kv := range az.Env(ca) {
				k, v, _ := strings.Cut(kv, "=")
				env.Setenv(k, v)
			}
			for _, kv := range az.MSIEnv() {
				k, v, _ := strings.Cut(kv, "=")
				env.Setenv("FAKE_"+k, v)
			}
			env.Setenv("REPO", repo)
			env.Setenv("TENANT", azuretest.DefaultTenant)
			// Under -race every process that exits (rather than execve)
			// sleeps a second by default before exiting; races are still
			// reported, and fail the command, without it.
			env.Setenv("GORACE", "atexit_sleep_ms=0")
			env.Values[azureKey{}] = az
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"azure":    cmdAzure,
			"vault":    cmdVault,
			"exits":    cmdExits,
			"waitfile": cmdWaitfile,
			"signal":   cmdSignal,
			"bgexit":   cmdBgexit,
			"zombies":  cmdZombies,
			"childpid": cmdChildpid,
			"leakscan": cmdLeakscan,
		},
	})
}

type azureKey struct{}

func fakeAzure(ts *testscript.TestScript) *azuretest.Azure {
	return ts.Value(azureKey{}).(*azuretest.Azure)
}

func atoi(ts *testscript.TestScript, s string) int {
	n, err := strconv.Atoi(s)
	ts.Check(err)
	return n
}

func duration(ts *testscript.TestScript, s string) time.Duration {
	d, err := time.ParseDuration(s)
	ts.Check(err)
	return d
}

// timeOrDuration reads an RFC 3339 time, or a duration from now.
func timeOrDuration(ts *testscript.TestScript, s string) time.Time {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t
	}
	return time.Now().Add(duration(ts, s))
}

func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits N COMMAND [ARG...]")
	}
	want := atoi(ts, args[0])
	err := ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

func cmdWaitfile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	path := ts.MkAbs(args[0])
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	ts.Fatalf("%s did not appear", args[0])
}

func newestBackground(ts *testscript.TestScript) *exec.Cmd {
	cmds := ts.BackgroundCmds()
	if len(cmds) == 0 {
		ts.Fatalf("no background command")
	}
	return cmds[len(cmds)-1]
}

// signalled remembers, per script, the background command signal last
// sent to: wait forgets its background commands, bgexit still needs it.
var signalled sync.Map // *testscript.TestScript → *exec.Cmd

func cmdBgexit(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: bgexit N")
	}
	cmd, ok := signalled.Load(ts)
	if !ok {
		ts.Fatalf("no command was signalled")
	}
	st := cmd.(*exec.Cmd).ProcessState
	if st == nil {
		ts.Fatalf("the background command has not been waited for")
	}
	if want := atoi(ts, args[0]); st.ExitCode() != want {
		ts.Fatalf("the background command exited %d (%v), want %d", st.ExitCode(), st, want)
	}
}

// pidNamespaces reports once whether this machine lets us make PID namespaces.
var pidNamespaces = sync.OnceValue(func() bool {
	return exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").Run() == nil
})

func scriptCondition(cond string) (bool, error) {
	switch cond {
	case "pidns":
		return pidNamespaces(), nil
	}
	return false, fmt.Errorf("unknown condition %q", cond)
}

// firstChild returns the pid of the first child of pid, from /proc.
func firstChild(ts *testscript.TestScript, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	ts.Check(err)
	f := strings.Fields(string(data))
	if len(f) == 0 {
		ts.Fatalf("process %d has no child", pid)
	}
	return atoi(ts, f[0])
}

func cmdChildpid(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: childpid FILE")
	}
	pid := firstChild(ts, newestBackground(ts).Process.Pid)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(strconv.Itoa(pid)+"\n"), 0o644))
}

// cmdLeakscan fails when a file under the given directories holds text,
// except the files named after -except (the ones a value belongs in).
func cmdLeakscan(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: leakscan TEXT DIR... [-except FILE...]")
	}
	text, dirs, except := args[0], args[1:], map[string]bool{}
	if i := slices.Index(dirs, "-except"); i >= 0 {
		for _, f := range dirs[i+1:] {
			except[ts.MkAbs(f)] = true
		}
		dirs = dirs[:i]
	}
	scanned := 0
	for _, dir := range dirs {
		filepath.WalkDir(ts.MkAbs(dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || except[path] {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			scanned++
			if strings.Contains(string(data), text) {
				ts.Fatalf("%s holds %q", path, text)
			}
			return nil
		})
	}
	fmt.Fprintf(ts.Stdout(), "scanned %d files\n", scanned)
}

// cmdZombies prints the pids of the zombie children of a process, from /proc.
func cmdZombies(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: zombies PIDFILE")
	}
	parent := strings.TrimSpace(ts.ReadFile(args[0]))
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		data, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		i := strings.LastIndexByte(string(data), ')')
		f := strings.Fields(string(data[i+1:]))
		if len(f) > 1 && f[0] == "Z" && f[1] == parent {
			fmt.Fprintln(ts.Stdout(), filepath.Base(filepath.Dir(st)))
		}
	}
}

func cmdAzure(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("azure does not support !")
	}
	if len(args) == 0 {
		ts.Fatalf("usage: azure COMMAND ARGS...")
	}
	az := fakeAzure(ts)
	need := func(n int) {
		if len(args) != n+1 {
			ts.Fatalf("azure %s takes %d arguments", args[0], n)
		}
	}
	switch args[0] {
	case "client":
		need(3)
		az.AddClient(args[1], args[2], args[3])
	case "identity":
		need(1)
		az.AddIdentity(args[1])
	case "workspace":
		need(4)
		az.AddWorkspace(args[1], args[2], args[3], args[4])
	case "deny-workspace":
		need(3)
		az.DenyWorkspace(args[1], args[2], args[3])
	case "fail-arm", "fail-token", "fail-msi":
		need(2)
		n, status := atoi(ts, args[1]), atoi(ts, args[2])
		map[string]func(int, int){"fail-arm": az.FailARMRequests, "fail-token": az.FailTokenRequests, "fail-msi": az.FailMSIRequests}[args[0]](n, status)
	case "token-latency":
		need(1)
		az.SetTokenLatency(duration(ts, args[1]))
	case "msi-latency":
		need(1)
		az.SetMSILatency(duration(ts, args[1]))
	case "count":
		need(1)
		fmt.Fprintf(ts.Stdout(), "%d\n", az.CountHost(args[1]))
	case "reset":
		need(0)
		az.Reset()
	default:
		ts.Fatalf("unknown azure command %q", args[0])
	}
}

func cmdVault(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("vault does not support !")
	}
	if len(args) == 0 {
		ts.Fatalf("usage: vault COMMAND ARGS...")
	}
	v := fakeAzure(ts).Vaults
	switch args[0] {
	case "set", "setfile":
		if len(args) < 4 {
			ts.Fatalf("usage: vault %s VAULT NAME VALUE|FILE [OPTION...]", args[0])
		}
		value := args[3]
		if args[0] == "setfile" {
			value = ts.ReadFile(args[3])
		}
		var opts []vaulttest.SetOption
		tags := map[string]string{}
		for _, o := range args[4:] {
			k, val, _ := strings.Cut(o, "=")
			switch k {
			case "disabled":
				opts = append(opts, vaulttest.Enabled(false))
			case "expires":
				opts = append(opts, vaulttest.Expires(timeOrDuration(ts, val)))
			case "nbf":
				opts = append(opts, vaulttest.NotBefore(timeOrDuration(ts, val)))
			case "type":
				opts = append(opts, vaulttest.ContentType(val))
			case "tag":
				tk, tv, _ := strings.Cut(val, "=")
				tags[tk] = tv
				opts = append(opts, vaulttest.Tags(tags))
			case "created":
				t, err := time.Parse(time.RFC3339, val)
				ts.Check(err)
				opts = append(opts, vaulttest.Created(t))
			default:
				ts.Fatalf("unknown vault set option %q", o)
			}
		}
		ts.Setenv("VERSION", v.Set(args[1], args[2], value, opts...))
	case "fill":
		// Scripts of many mappings need many secrets; one command a secret
		// would bury the script.
		if len(args) != 4 {
			ts.Fatalf("usage: vault fill VAULT PREFIX N")
		}
		for i := 1; i <= atoi(ts, args[3]); i++ {
			name := fmt.Sprintf("%s-%d", args[2], i)
			v.Set(args[1], name, name)
		}
	case "disable", "delete-version":
		if len(args) != 4 {
			ts.Fatalf("usage: vault %s VAULT NAME VERSION", args[0])
		}
		f := v.Disable
		if args[0] == "delete-version" {
			f = v.DeleteVersion
		}
		ts.Check(f(args[1], args[2], args[3]))
	case "fault":
		if len(args) < 4 {
			ts.Fatalf("usage: vault fault VAULT NAME STATUS|reset|close|truncate|html [TIMES] [RETRY-AFTER]")
		}
		f := vaulttest.Fault{Vault: args[1], Secret: args[2], Times: 1}
		switch args[3] {
		case "reset":
			f.Mode = vaulttest.ResetConn
		case "close":
			f.Mode = vaulttest.CloseConn
		case "truncate":
			f.Mode = vaulttest.TruncatedJSON
		case "html":
			f.Mode = vaulttest.HTMLBody
		default:
			f.Status = atoi(ts, args[3])
		}
		if len(args) > 4 {
			f.Times = atoi(ts, args[4])
		}
		if len(args) > 5 {
			f.RetryAfter = duration(ts, args[5])
		}
		if f.Secret == "*" {
			f.Secret = ""
		}
		v.AddFault(f)
	case "get", "show":
		if len(args) != 3 {
			ts.Fatalf("usage: vault %s VAULT NAME", args[0])
		}
		cur, ok := v.Get(args[1], args[2], "")
		if !ok {
			ts.Fatalf("vault %s has no secret %s", args[1], args[2])
		}
		if args[0] == "get" {
			fmt.Fprint(ts.Stdout(), cur.Value)
			break
		}
		stamp := func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.UTC().Format(time.RFC3339)
		}
		var tags []string
		for _, k := range slices.Sorted(maps.Keys(cur.Tags)) {
			tags = append(tags, k+"="+cur.Tags[k])
		}
		fmt.Fprintf(ts.Stdout(), "versions=%d version=%s enabled=%t type=%s tags=%s nbf=%s expires=%s\n",
			len(v.Versions(args[1], args[2])), cur.Version, cur.Enabled, cur.ContentType, strings.Join(tags, ","), stamp(cur.NotBefore), stamp(cur.Expires))
	case "clear-faults":
		v.ClearFaults()
	case "pagesize":
		if len(args) != 2 {
			ts.Fatalf("usage: vault pagesize N")
		}
		v.SetPageSize(atoi(ts, args[1]))
	case "tenant":
		if len(args) != 3 {
			ts.Fatalf("usage: vault tenant VAULT TENANT")
		}
		v.SetVaultTenant(args[1], args[2])
	case "latency":
		if len(args) != 2 {
			ts.Fatalf("usage: vault latency DURATION")
		}
		v.SetLatency(duration(ts, args[1]))
	case "throttle":
		if len(args) < 3 {
			ts.Fatalf("usage: vault throttle LIMIT WINDOW [retry-after]")
		}
		v.SetThrottle(atoi(ts, args[1]), duration(ts, args[2]), len(args) > 3 && args[3] == "retry-after")
	case "stats":
		st := v.Stats()
		fmt.Fprintf(ts.Stdout(), "requests=%d challenges=%d throttled=%d peak=%d\n", st.Requests, st.Challenges, st.Throttled, st.PeakInFlight)
	default:
		ts.Fatalf("unknown vault command %q", args[0])
	}
}
