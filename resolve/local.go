package resolve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// LocalFile serves secrets from a local dotenv file, fully offline. Its keys
// are secret names with '-' written as '_', compared case-insensitively:
// DB_PASS=... serves db-pass. It stands in for every vault, so a reference
// naming a vault is served by name too.
type LocalFile struct {
	path   string
	values map[string]string // secret name (lower case) → value
	log    *slog.Logger
}

// NewLocalFile parses a local secrets file. Two keys that name the same
// secret with different values are a configuration error.
func NewLocalFile(path string, data []byte, log *slog.Logger) (*LocalFile, error) {
	f, err := ParseDotenv(path, data)
	if err != nil {
		if fe := (*FileError)(nil); errors.As(err, &fe) {
			fe.kind = KindConfig
		}
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &LocalFile{path: path, values: map[string]string{}, log: log}
	first := map[string]Entry{}
	for _, e := range f.Entries {
		name := SecretNameFor(e.Key)
		if prev, ok := first[name]; ok && prev.Value != e.Value {
			return nil, &FileError{Path: path, Line: e.Line, kind: KindConfig,
				Reason: fmt.Sprintf("%s and %s (line %d) both name secret %s, with different values", e.Key, prev.Key, prev.Line, name),
				Hint:   "keep one of the two lines"}
		}
		first[name] = e
		l.values[name] = e.Value
	}
	return l, nil
}

// Path is the file's path, as given.
func (l *LocalFile) Path() string { return l.path }

// Names returns the secret names the file serves.
func (l *LocalFile) Names() []string {
	out := make([]string, 0, len(l.values))
	for n := range l.values {
		out = append(out, n)
	}
	return out
}

// Fetch serves each id from the file. A pinned version cannot be checked
// offline: the file's value is served, and one warning says so.
func (l *LocalFile) Fetch(_ context.Context, ids []SecretID) []Result {
	out := make([]Result, len(ids))
	var pinned []string
	for i, id := range ids {
		v, ok := l.values[id.Name]
		if !ok {
			out[i] = Result{Err: &Failure{Kind: KindMissing, Cause: "not in the local secrets file",
				Hint: fmt.Sprintf("add a line %s=... to %s", EnvKeyFor(id.Name), l.path)}}
			continue
		}
		if id.Version != "" {
			pinned = append(pinned, id.String())
		}
		out[i] = Result{Secret: Secret{Value: v, Name: id.Name, Enabled: true, Local: true}}
	}
	if len(pinned) > 0 {
		l.log.Warn("pinned versions cannot be checked offline; serving the local file's value",
			"file", l.path, "secrets", strings.Join(pinned, ","))
	}
	return out
}

// EnvKeyFor is the dotenv key that stands for a secret name: upper case with
// '-' written as '_' (db-pass → DB_PASS).
func EnvKeyFor(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}
