//go:build unix && !linux

package launcher

// becomeSubreaper does nothing where there is no child subreaper: only the
// child and orphans re-parented to us as PID 1 are reaped.
func becomeSubreaper() (undo func()) { return func() {} }

// setForeground makes pgrp the foreground process group of the terminal
// fd. Where a thread's signal mask cannot be set from Go, a short-lived
// helper process does it: see setForegroundByFork.
func setForeground(fd, pgrp int) error { return setForegroundByFork(fd, pgrp) }
