//go:build !unix && !windows

package launcher

func isBadExecutable(error) bool { return false }
