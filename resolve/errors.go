package resolve

import (
	"fmt"
	"strings"
)

// Kind classifies an error for the exit-status table of package main.
type Kind int

// The kinds of failure. Package main maps each to one exit status.
const (
	// KindUsage is a bad mapping or reference.
	KindUsage Kind = iota + 1
	// KindConfig is a local secrets file that cannot be used.
	KindConfig
	// KindDenied is access denied or an identity that cannot get a token.
	KindDenied
	// KindMissing is a secret that is not found, disabled, expired or not yet valid.
	KindMissing
	// KindUnavailable is a vault or identity service that did not answer in
	// time, throttling that outlasted the timeout, or a malformed answer.
	KindUnavailable
)

// MappingError is a mapping that cannot be used: a bad variable name, a bad
// reference, or two different references for one variable.
type MappingError struct {
	Env    string
	From   Origin
	Reason string
	Hint   string
	// Other is the second place of a conflict, zero otherwise.
	Other Origin
}

func (e *MappingError) Error() string {
	var b strings.Builder
	if e.Env != "" {
		b.WriteString(e.Env + ": ")
	}
	b.WriteString(e.Reason)
	if e.From != (Origin{}) {
		b.WriteString(" (" + e.From.String())
		if e.Other != (Origin{}) {
			b.WriteString(" and " + e.Other.String())
		}
		b.WriteString(")")
	}
	return b.String()
}

// Kind reports a usage error.
func (e *MappingError) Kind() Kind { return KindUsage }

// FetchError is one mapping whose secret could not be had. Its text names
// the variable, the reference, the vault and the cause, never a value.
type FetchError struct {
	Env   string
	Ref   string // as written
	Vault string // vault URL, or the local secrets file
	Cause string
	Hint  string
	kind  Kind
	// Detail is the raw service answer, for debug logs only: it may be long
	// and is not contractual, but it never holds a secret value.
	Detail string
}

func (e *FetchError) Error() string {
	where := ""
	if e.Vault != "" {
		where = " in " + e.Vault
	}
	return fmt.Sprintf("%s: secret %s%s: %s", e.Env, e.Ref, where, e.Cause)
}

// Kind classifies the failure.
func (e *FetchError) Kind() Kind { return e.kind }

// Errors is every failure of one resolution, reported together.
type Errors []error

func (e Errors) Error() string {
	parts := make([]string, len(e))
	for i, err := range e {
		parts[i] = err.Error()
	}
	return strings.Join(parts, "\n")
}

// Unwrap returns the individual errors.
func (e Errors) Unwrap() []error { return e }

// Kind is the most severe kind among the errors, so one exit status
// summarises them: a usage error first, then missing secrets (the user must
// act), then denied access, then unavailability (retrying may help).
func (e Errors) Kind() Kind {
	best := Kind(0)
	for _, err := range e {
		k, ok := err.(interface{ Kind() Kind })
		if !ok {
			continue
		}
		if best == 0 || rank(k.Kind()) < rank(best) {
			best = k.Kind()
		}
	}
	return best
}

func rank(k Kind) int {
	switch k {
	case KindUsage:
		return 0
	case KindConfig:
		return 1
	case KindMissing:
		return 2
	case KindDenied:
		return 3
	default:
		return 4
	}
}
