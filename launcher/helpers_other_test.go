//go:build !unix

package launcher

import (
	"fmt"
	"os"
)

// The helper processes exercise execve, process groups and reaping, which
// only exist on Unix.

func execHelper(helperConfig) int {
	fmt.Fprintln(os.Stderr, "helper: exec helper needs Unix")
	return 3
}

func superviseHelper(helperConfig) int {
	fmt.Fprintln(os.Stderr, "helper: supervise helper needs Unix")
	return 3
}

func sessionHelper(helperConfig) int {
	fmt.Fprintln(os.Stderr, "helper: session helper needs Linux")
	return 3
}

func foregroundByForkHelper(helperConfig) int {
	fmt.Fprintln(os.Stderr, "helper: needs Linux")
	return 3
}
