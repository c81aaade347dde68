//go:build unix && !linux

package launcher

import (
	"fmt"
	"os"
)

func sessionHelper(helperConfig) int {
	fmt.Fprintln(os.Stderr, "helper: session helper needs Linux")
	return 3
}

func foregroundByForkHelper(helperConfig) int {
	fmt.Fprintln(os.Stderr, "helper: needs Linux")
	return 3
}
