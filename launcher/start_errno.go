//go:build !plan9

package launcher

import (
	"errors"
	"syscall"
)

func isDirError(err error) bool    { return errors.Is(err, syscall.EISDIR) }
func isNoExecError(err error) bool { return errors.Is(err, syscall.ENOEXEC) }
