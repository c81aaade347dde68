//go:build unix

package launcher

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// setForegroundByFork makes pgrp (a group of our session, normally our
// own) the foreground process group of the terminal fd without a SIGTTOU
// reaching us. The Go runtime forks with all signals blocked and keeps
// them blocked in the child until just before exec, and that is where
// SysProcAttr.Foreground does its ioctl: so a child that joins pgrp and
// takes the terminal for it is immune to SIGTTOU. The child then execs a
// path that does not exist and exits; the terminal stays with pgrp.
func setForegroundByFork(fd, pgrp int) error {
	_, err := syscall.ForkExec("/nonexistent/runsecrets-set-foreground", nil, &syscall.ProcAttr{
		Sys: &syscall.SysProcAttr{Foreground: true, Pgid: pgrp, Ctty: fd},
	})
	if fg, gerr := unix.IoctlGetInt(fd, unix.TIOCGPGRP); gerr == nil && fg == pgrp {
		return nil
	}
	return err
}
