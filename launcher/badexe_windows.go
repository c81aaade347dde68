package launcher

import (
	"errors"
	"syscall"
)

// errorBadExeFormat is ERROR_BAD_EXE_FORMAT: the file is not a program
// Windows can load.
const errorBadExeFormat = syscall.Errno(193)

func isBadExecutable(err error) bool { return errors.Is(err, errorBadExeFormat) }
