package launcher

import (
	"io"
	"time"
)

// RunSpec describes a child for Supervise.
type RunSpec struct {
	// Argv is the command and its arguments. Argv[0] is looked up in the
	// PATH of Env on Unix (see Exec).
	Argv []string
	// Env is the child's complete environment, as built by BuildEnv.
	Env []string
	// Grace is how long the child may take to exit after a forwarded
	// SIGTERM or SIGINT (or after ctx is done) before its process group
	// is killed with SIGKILL. Zero kills at once; negative never does.
	Grace time.Duration
	// Mask are secret values to mask in the child's stdout and stderr.
	// When it is empty, an *os.File Stdout or Stderr is handed to the
	// child as is, with no copying.
	Mask [][]byte
	// MaskDelay is Masker.Delay for the masking filters.
	MaskDelay time.Duration
	// Stdin, Stdout and Stderr are the child's standard streams. An
	// *os.File is passed to the child directly (unless it must be
	// masked); other values are copied through pipes, like exec.Cmd does;
	// nil means the null device. When Stdout and Stderr are the same
	// value, the child gets one pipe for both, which keeps their order.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// OnExit, if set, is called exactly once before Supervise returns,
	// after the child has ended and its output has been written, on every
	// path: a normal exit, death by a signal, a failure to start. The
	// caller removes its --file directory there.
	OnExit func()
}

// outputDrainTimeout bounds how long Supervise keeps copying output after
// the child has exited. Background processes the child left behind may
// hold its stdout open for ever; their later output is dropped rather
// than keeping the exit code from the caller.
const outputDrainTimeout = time.Second

// sameWriter reports whether a and b are the same writer. Comparing
// interfaces panics when their dynamic type is not comparable; such
// writers are different.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}
