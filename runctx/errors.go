package runctx

import "strings"

// Class classifies an error for the exit-status table of package main.
type Class int

// The classes of failure.
const (
	// ClassUsage is a bad setting (an invalid vault URL, say).
	ClassUsage Class = iota + 1
	// ClassConfig is no run context, or a config file that cannot be used.
	ClassConfig
	// ClassDenied is access denied or an identity that cannot get a token.
	ClassDenied
	// ClassUnavailable is a service that did not answer in time.
	ClassUnavailable
)

// Error is a run-context failure with what to do about it.
type Error struct {
	Class Class
	Msg   string
	// Hints say what to do, one per line.
	Hints []string
	// Err is the underlying error, for debug logs; its text is not shown
	// otherwise, as Azure's are long and not contractual.
	Err error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Hint returns the hints as one line each.
func (e *Error) Hint() string {
	return strings.Join(e.Hints, "\n")
}

// Unavailable reports whether trying again later may help: the identity or
// management service did not answer.
func (e *Error) Unavailable() bool { return e.Class == ClassUnavailable }

// NonRetriable tells the Azure SDK's retry policy not to retry: the
// credential has retried already.
func (e *Error) NonRetriable() {}
