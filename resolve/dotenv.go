package resolve

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/joho/godotenv"
)

// ParseDotenv parses a dotenv file with godotenv and returns its entries in
// file order, each with the line of its last assignment. A parse error names
// the file and line but never quotes the file: env files hold secret values.
func ParseDotenv(path string, data []byte) (EnvFile, error) {
	vals, err := godotenv.UnmarshalBytes(data)
	if err != nil {
		return EnvFile{}, &FileError{Path: path, Line: firstBadLine(data),
			Reason: "not a dotenv line (KEY=VALUE), or a quote that is never closed", kind: KindUsage}
	}
	lines := keyLines(data)
	out := EnvFile{Path: path, Entries: make([]Entry, 0, len(vals))}
	for k, v := range vals {
		out.Entries = append(out.Entries, Entry{Key: k, Value: v, Line: lines[k]})
	}
	slices.SortFunc(out.Entries, func(a, b Entry) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return strings.Compare(a.Key, b.Key)
	})
	return out, nil
}

// FileError is a file that cannot be used.
type FileError struct {
	Path   string
	Line   int // 0 when the whole file is at fault
	Reason string
	Hint   string
	kind   Kind
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.Path, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Reason)
}

// Kind classifies the failure: a bad map or env file is a usage error, a
// bad local secrets file a configuration error.
func (e *FileError) Kind() Kind { return e.kind }

// keyLines maps each key to the last line that assigns it. godotenv does not
// report positions, so this follows its syntax for the start of a
// statement: optional "export ", a key of letters, digits, '_' and '.',
// then '=' or ':'.
func keyLines(data []byte) map[string]int {
	out := map[string]int{}
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimLeft(line, " \t")
		if rest, ok := bytes.CutPrefix(line, []byte("export")); ok && len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			line = bytes.TrimLeft(rest, " \t")
		}
		n := 0
		for n < len(line) && (isAlnum(line[n]) || line[n] == '_' || line[n] == '.') {
			n++
		}
		if rest := bytes.TrimLeft(line[n:], " \t"); n > 0 && len(rest) > 0 && (rest[0] == '=' || rest[0] == ':') {
			out[string(line[:n])] = i + 1
		}
	}
	return out
}

// firstBadLine returns the line after the longest prefix of whole lines that
// godotenv accepts: where the trouble starts.
func firstBadLine(data []byte) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	good := 0
	var prefix []byte
	for i, l := range lines {
		prefix = append(prefix, l...)
		if _, err := godotenv.UnmarshalBytes(prefix); err == nil {
			good = i + 1
		}
	}
	return good + 1
}
