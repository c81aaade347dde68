package launcher

import (
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// becomeSubreaper makes this process the reaper of orphaned descendants,
// so that a child's own children that outlive it are re-parented to us
// and reaped by Supervise rather than by an init that may not reap (a
// container whose PID 1 is a shell or another tool). It returns a
// function that undoes the setting, if it was made here. PID 1 is the
// reaper anyway.
func becomeSubreaper() (undo func()) {
	undo = func() {}
	if os.Getpid() == 1 {
		return undo
	}
	var was int32
	if err := unix.Prctl(unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&was)), 0, 0, 0); err != nil || was != 0 {
		return undo
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		// Not fatal: our own children are still reaped.
		return undo
	}
	return func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) }
}

// setForeground makes pgrp the foreground process group of the terminal
// fd. Changing the foreground group from a background group makes the
// kernel send SIGTTOU to the caller's group unless the calling thread
// blocks or ignores it. Ignoring is process-wide and survives execve, and
// catching it does not help (the ioctl is restarted and signalled again),
// so the one thread that makes the call blocks SIGTTOU for its duration.
func setForeground(fd, pgrp int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set, old unix.Sigset_t
	bitsPerWord := uint(unsafe.Sizeof(set.Val[0]) * 8)
	n := uint(unix.SIGTTOU) - 1
	set.Val[n/bitsPerWord] |= 1 << (n % bitsPerWord)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err != nil {
		return err
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	return unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, pgrp)
}
