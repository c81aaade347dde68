//go:build unix

package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// forwardedSignals are passed on to the child's process group: the
// termination and notification signals a container runtime, a batch
// scheduler or a terminal sends. The list is explicit: a bare
// signal.Notify would also catch SIGURG, which the Go runtime uses for
// goroutine preemption, and SIGCHLD, SIGPIPE and the job-control signals,
// which are not ours to forward.
var forwardedSignals = []os.Signal{
	unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT,
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH,
}

// Supervise runs the child described by spec and waits for it, doing the
// duties of a container entrypoint (SPEC §7):
//
//   - The child runs in its own process group. When Stdin is the
//     controlling terminal and this process is in the foreground, the
//     child's group becomes the terminal's foreground group, so Ctrl-C
//     reaches the child once, directly; the terminal is given back before
//     Supervise returns. If the child is stopped from the terminal
//     (Ctrl-Z), Supervise takes the terminal back and stops itself, so the
//     shell above regains control, and resumes the child on SIGCONT.
//   - SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH are
//     forwarded to the child's process group. Signals that were ignored
//     when Supervise started (nohup) are left alone, so the child inherits
//     the ignoring. After a forwarded SIGTERM or SIGINT, or once ctx is
//     done (which sends SIGTERM), the group is killed with SIGKILL when
//     Grace has passed.
//   - Every child of this process is reaped, including orphans that the
//     kernel re-parents to it: as PID 1 that is the kernel's rule, and on
//     Linux otherwise Supervise makes the process a child subreaper while
//     it runs.
//
// Supervise returns when the child has exited: its exit code, or 128+N
// when signal N killed it. A command that cannot be started is a
// *StartError. Processes the child left running are not killed.
//
// The caller must not have signal handling of its own active for the
// forwarded signals (stop signal.NotifyContext first), or each signal
// would also reach the caller's handler, and must not start or wait for
// other child processes while Supervise runs: it reaps with wait4(-1), so
// it would take their exit statuses. It uses no os.Process or exec.Cmd for
// the child for the same reason.
func Supervise(ctx context.Context, spec RunSpec) (code int, err error) {
	if spec.OnExit != nil {
		// Registered first so it runs last, after output is flushed.
		defer spec.OnExit()
	}
	if len(spec.Argv) == 0 || spec.Argv[0] == "" {
		return -1, errNoCommand
	}
	if err := ctx.Err(); err != nil {
		return -1, fmt.Errorf("command not started: %w", err)
	}
	path, err := findCommand(spec.Argv[0], spec.Env)
	if err != nil {
		return -1, err
	}

	cio, err := newChildIO(spec)
	if err != nil {
		return -1, err
	}
	defer cio.closeParentEnds()

	// Catch signals before the child exists, so none sent in between is
	// lost or, worse, kills this process with the default action.
	signals := make(chan os.Signal, 16)
	for _, sig := range forwardedSignals {
		if !signal.Ignored(sig) {
			signal.Notify(signals, sig)
		}
	}
	defer signal.Stop(signals)
	// SIGCHLD only wakes the loop; statuses come from wait4. A buffer of
	// one suffices: after every wake-up the loop reaps until nothing is
	// left, so coalesced SIGCHLDs lose nothing.
	children := make(chan os.Signal, 1)
	signal.Notify(children, unix.SIGCHLD)
	defer signal.Stop(children)

	defer becomeSubreaper()()

	pgrp, _ := unix.Getpgid(0)
	s := &supervisor{tty: -1, pgrp: pgrp}
	if tty, ok := foregroundTTY(spec.Stdin); ok {
		s.tty = tty
	}
	pid, err := s.start(path, spec, cio.childFiles)
	cio.closeChildEnds()
	if err != nil {
		return -1, err
	}
	s.pid = pid
	cio.startCopying()

	status := s.wait(ctx, signals, children, spec.Grace)

	s.reclaimTerminal()
	if s.killed {
		s.awaitGroupGone(children)
	}
	cio.drain()
	s.reapAll()

	switch {
	case status.Exited():
		return status.ExitStatus(), nil
	case status.Signaled():
		return 128 + int(status.Signal()), nil
	}
	return -1, fmt.Errorf("command %q ended with unexpected wait status %#x", spec.Argv[0], uint32(status))
}

// supervisor is the state of one Supervise call.
type supervisor struct {
	pid  int // the child, also its process group ID
	pgrp int // our own process group
	tty  int // the controlling terminal handed to the child, or -1
	// killed is set once the group has been sent SIGKILL.
	killed bool
}

// start forks and execs the child in its own process group, in the
// terminal's foreground when s.tty is set.
func (s *supervisor) start(path string, spec RunSpec, files []uintptr) (int, error) {
	attr := &syscall.ProcAttr{
		Env:   spec.Env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	}
	if s.tty >= 0 {
		// The child makes its new group the foreground one itself,
		// between fork and exec, with signals blocked, so it gets no
		// SIGTTOU and there is no moment when it runs in the background.
		attr.Sys.Foreground = true
		attr.Sys.Ctty = s.tty
	}
	pid, err := syscall.ForkExec(path, spec.Argv, attr)
	if err != nil && s.tty >= 0 {
		// The handoff itself may be what failed, or it succeeded and the
		// exec failed: either way take the terminal back and try once
		// without it, so the error reported is about the command.
		s.setForegroundFrom(-1)
		s.tty = -1
		attr.Sys.Foreground = false
		pid, err = syscall.ForkExec(path, spec.Argv, attr)
	}
	if err != nil {
		return 0, execFailure(spec.Argv[0], path, err)
	}
	return pid, nil
}

// wait forwards signals and reaps children until the main child has exited,
// and returns its status.
func (s *supervisor) wait(ctx context.Context, signals, children <-chan os.Signal, grace time.Duration) syscall.WaitStatus {
	var (
		graceTimer *time.Timer
		graceC     <-chan time.Time
		ctxDone    = ctx.Done()
	)
	startGrace := func() {
		switch {
		case graceTimer != nil || grace < 0:
		case grace == 0:
			graceTimer = time.NewTimer(0)
			graceC = graceTimer.C
		default:
			graceTimer = time.NewTimer(grace)
			graceC = graceTimer.C
		}
	}
	defer func() {
		if graceTimer != nil {
			graceTimer.Stop()
		}
	}()

	for {
		select {
		case <-children:
		case sig := <-signals:
			s.signal(sig.(syscall.Signal))
			if sig == unix.SIGTERM || sig == unix.SIGINT {
				startGrace()
			}
		case <-ctxDone:
			ctxDone = nil
			s.signal(unix.SIGTERM)
			startGrace()
		case <-graceC:
			graceC = nil
			s.signal(unix.SIGKILL)
			s.killed = true
		}
		// Reap after every event, not only on SIGCHLD: it is cheap, and the
		// main child is never signalled after it has been reaped (its PID
		// could be reused), because the loop ends right here.
		if status, exited := s.reap(); exited {
			return status
		}
	}
}

// reap collects every child that has changed state, without blocking, and
// reports the main child's status once it has exited. Re-parented orphans
// are simply reaped.
func (s *supervisor) reap() (status syscall.WaitStatus, exited bool) {
	options := unix.WNOHANG
	if s.tty >= 0 {
		options |= unix.WUNTRACED
	}
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, options, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			// ECHILD: no children left; 0: none has changed state.
			return status, exited
		}
		if pid != s.pid {
			continue
		}
		switch {
		case ws.Stopped():
			s.childStopped()
		case ws.Exited(), ws.Signaled():
			status, exited = ws, true
		}
	}
}

// reapAll reaps whatever has already exited once the main child is gone.
func (s *supervisor) reapAll() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
	}
}

// awaitGroupGone waits, briefly, for the rest of a SIGKILLed group to die
// and reaps it. The child's own children die at the same moment as the
// child but are re-parented to us a little later; without this they
// would be left as zombies when Supervise returns. A group member in an
// uninterruptible sleep may take longer than we wait.
func (s *supervisor) awaitGroupGone(children <-chan os.Signal) {
	deadline := time.NewTimer(time.Second)
	defer deadline.Stop()
	// Members that are not our children (no subreaper outside Linux) send
	// us no SIGCHLD, so poll as well.
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		s.reapAll()
		if err := syscall.Kill(-s.pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		select {
		case <-children:
		case <-poll.C:
		case <-deadline.C:
			return
		}
	}
}

// signal sends sig to the child's process group, or to the child alone if
// it has left its group (setsid).
func (s *supervisor) signal(sig syscall.Signal) {
	if err := syscall.Kill(-s.pid, sig); errors.Is(err, syscall.ESRCH) {
		syscall.Kill(s.pid, sig)
	}
}

// childStopped handles the child being stopped by a job-control signal
// from the terminal (Ctrl-Z, or reading it in the background). The shell
// above us sees only this process, so we take the terminal back and stop
// ourselves the same way; when the shell continues us (fg or bg) we give
// the terminal back if we are in the foreground again and continue the
// child. Where no shell can continue us (PID 1, an orphaned process
// group) the kernel discards our SIGTSTP and the child is simply
// continued.
func (s *supervisor) childStopped() {
	s.setForegroundFrom(s.pid)
	syscall.Kill(os.Getpid(), unix.SIGTSTP)
	if fg, err := unix.IoctlGetInt(s.tty, unix.TIOCGPGRP); err == nil && fg == s.pgrp {
		setForeground(s.tty, s.pid)
	}
	s.signal(unix.SIGCONT)
}

// reclaimTerminal gives the terminal back to our process group if the
// child's group still holds it.
func (s *supervisor) reclaimTerminal() {
	if s.tty >= 0 {
		s.setForegroundFrom(s.pid)
	}
}

// setForegroundFrom makes our group the terminal's foreground group if
// the group from holds it (-1: whatever holds it). Taking it from anyone
// else would steal it from the shell when we were moved to the background.
func (s *supervisor) setForegroundFrom(from int) {
	fg, err := unix.IoctlGetInt(s.tty, unix.TIOCGPGRP)
	if err != nil || fg == s.pgrp || from >= 0 && fg != from {
		return
	}
	setForeground(s.tty, s.pgrp)
}

// foregroundTTY returns stdin's file descriptor when it is this process's
// controlling terminal and our process group is in its foreground: only
// then may the child take over the terminal. A background job must not
// grab it from the shell.
func foregroundTTY(stdin io.Reader) (int, bool) {
	f, ok := stdin.(*os.File)
	if !ok || f == nil {
		return -1, false
	}
	fd := int(f.Fd())
	fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	pgrp, _ := unix.Getpgid(0)
	if err != nil || fg != pgrp {
		return -1, false
	}
	return fd, true
}

// childIO holds the child's standard streams: the descriptors it gets, and
// the pipes and goroutines that copy (and mask) what it writes.
type childIO struct {
	childFiles []uintptr
	childEnds  []*os.File // our copies of what the child gets, closed after fork
	parentEnds []*os.File // pipe ends we keep (stdin writer, output readers)
	copiers    []*outputCopier
	stdinCopy  func() // starts copying a non-file Stdin
	copying    bool   // the copiers are running
}

// outputCopier copies one of the child's output pipes to its destination.
type outputCopier struct {
	r    *os.File
	dst  io.Writer
	mask *Masker
	done chan struct{}
}

func newChildIO(spec RunSpec) (_ *childIO, err error) {
	c := &childIO{}
	defer func() {
		if err != nil {
			c.closeChildEnds()
			c.closeParentEnds()
		}
	}()
	devNull := func() (uintptr, error) {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return 0, fmt.Errorf("open %s for the child: %w", os.DevNull, err)
		}
		c.childEnds = append(c.childEnds, f)
		return f.Fd(), nil
	}

	var stdin uintptr
	switch in := spec.Stdin.(type) {
	case nil:
		if stdin, err = devNull(); err != nil {
			return nil, err
		}
	case *os.File:
		stdin = in.Fd()
	default:
		r, w, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("create a pipe for the child's stdin: %w", err)
		}
		c.childEnds = append(c.childEnds, r)
		c.parentEnds = append(c.parentEnds, w)
		stdin = r.Fd()
		// Like exec.Cmd, copy until the reader ends or the child stops
		// reading. The goroutine is not waited for: a reader such as a
		// terminal may never end.
		c.stdinCopy = func() {
			go func() {
				io.Copy(w, in)
				w.Close()
			}()
		}
	}

	output := func(dst io.Writer, name string) (uintptr, error) {
		if dst == nil {
			return devNull()
		}
		if f, ok := dst.(*os.File); ok && len(spec.Mask) == 0 {
			return f.Fd(), nil
		}
		r, w, err := os.Pipe()
		if err != nil {
			return 0, fmt.Errorf("create a pipe for the child's %s: %w", name, err)
		}
		c.childEnds = append(c.childEnds, w)
		c.parentEnds = append(c.parentEnds, r)
		oc := &outputCopier{r: r, dst: dst, done: make(chan struct{})}
		if len(spec.Mask) > 0 {
			oc.mask = NewMasker(dst, spec.Mask)
			oc.mask.Delay = spec.MaskDelay
			oc.dst = oc.mask
		}
		c.copiers = append(c.copiers, oc)
		return w.Fd(), nil
	}
	stdout, err := output(spec.Stdout, "stdout")
	if err != nil {
		return nil, err
	}
	stderr := stdout
	if !sameWriter(spec.Stderr, spec.Stdout) {
		if stderr, err = output(spec.Stderr, "stderr"); err != nil {
			return nil, err
		}
	}
	c.childFiles = []uintptr{stdin, stdout, stderr}
	return c, nil
}

// startCopying starts the goroutines that feed and drain the pipes.
func (c *childIO) startCopying() {
	if c.stdinCopy != nil {
		c.stdinCopy()
	}
	for _, oc := range c.copiers {
		go oc.run()
	}
	c.copying = true
}

func (oc *outputCopier) run() {
	defer close(oc.done)
	_, err := io.Copy(oc.dst, oc.r)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		// Our destination failed (a closed stdout). Keep reading so the
		// child is not blocked on a full pipe, or killed by SIGPIPE for
		// our problem.
		io.Copy(io.Discard, oc.r)
	}
	if oc.mask != nil {
		oc.mask.Close()
	}
}

// drain waits until the child's output has been copied: until every
// writer has closed the pipes, or outputDrainTimeout after the child
// exited if something it left behind keeps them open.
func (c *childIO) drain() {
	if c.copying {
		deadline := time.Now().Add(outputDrainTimeout)
		for _, oc := range c.copiers {
			oc.r.SetReadDeadline(deadline)
		}
		for _, oc := range c.copiers {
			<-oc.done
		}
	}
	c.closeParentEnds()
}

func (c *childIO) closeChildEnds() {
	for _, f := range c.childEnds {
		f.Close()
	}
	c.childEnds = nil
}

func (c *childIO) closeParentEnds() {
	for _, f := range c.parentEnds {
		f.Close()
	}
	c.parentEnds = nil
}
