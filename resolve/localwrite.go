package resolve

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/joho/godotenv"
)

// Update is one secret to store: its name and its value.
type Update struct {
	Name  string
	Value string
}

// UpdateSecretsFile returns data, the text of a local secrets file, with
// every update applied, and leaves the rest of the file as it was: other
// lines, comments, blank lines and order. A key that already names the
// secret (DB_PASS or db_pass for db-pass) keeps its spelling and place and
// gets the new value; every such key does, so the file stays unambiguous. A
// secret the file lacks is appended as a new line KEY=VALUE, KEY being the
// name upper-cased with '-' written as '_'. Values are written by
// DotenvValue; one it refuses fails the whole update.
//
// The result is parsed back before it is returned: the updated secrets
// must read back byte for byte and every other key must still be there, or
// the update is refused rather than risk the file.
func UpdateSecretsFile(path string, data []byte, updates []Update) ([]byte, error) {
	old, err := godotenv.UnmarshalBytes(data)
	if err != nil {
		return nil, &FileError{Path: path, Line: firstBadLine(data), kind: KindConfig,
			Reason: "not a dotenv line (KEY=VALUE), or a quote that is never closed",
			Hint:   "fix the line, then set the secret again"}
	}
	stmts, err := dotenvStatements(data)
	if err != nil {
		// godotenv accepted what the scanner did not: the two disagree, so
		// do not touch the file.
		return nil, &FileError{Path: path, kind: KindConfig, Reason: "cannot find the lines of its keys: " + err.Error(),
			Hint: "edit the file by hand"}
	}
	want := map[string]string{} // secret name → value
	var order []string
	written := map[string]string{}
	for _, u := range updates {
		u.Name = strings.ToLower(u.Name) // names are case-insensitive
		if _, ok := want[u.Name]; !ok {
			order = append(order, u.Name)
		}
		want[u.Name] = u.Value
		w, err := DotenvValue(u.Value)
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", u.Name, err)
		}
		written[u.Name] = w
	}
	var out bytes.Buffer
	out.Grow(len(data) + 64*len(updates))
	at := 0
	present := map[string]bool{}
	for _, s := range stmts {
		name := SecretNameFor(s.key)
		w, ok := written[name]
		if !ok {
			continue
		}
		present[name] = true
		out.Write(data[at:s.valStart])
		out.WriteString(w)
		at = s.valEnd
	}
	out.Write(data[at:])
	for _, name := range order {
		if present[name] {
			continue
		}
		if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
			out.WriteByte('\n')
		}
		out.WriteString(EnvKeyFor(name) + "=" + written[name] + "\n")
	}
	result := out.Bytes()
	if err := checkUpdated(old, result, want); err != nil {
		return nil, &FileError{Path: path, kind: KindConfig, Reason: "refusing to update it: " + err.Error(),
			Hint: "edit the file by hand"}
	}
	return result, nil
}

// checkUpdated parses the updated file and checks the promise of
// UpdateSecretsFile. Its errors name keys, never values.
func checkUpdated(old map[string]string, data []byte, want map[string]string) error {
	got, err := godotenv.UnmarshalBytes(data)
	if err != nil {
		return errors.New("the updated file would not parse")
	}
	for k := range old {
		if _, ok := got[k]; !ok {
			return fmt.Errorf("key %s would be lost", k)
		}
	}
	seen := map[string]bool{}
	for k, v := range got {
		name := SecretNameFor(k)
		w, ok := want[name]
		if !ok {
			if _, had := old[k]; !had {
				return fmt.Errorf("key %s would appear", k)
			}
			continue
		}
		if v != w {
			return fmt.Errorf("key %s would not read back as the value written", k)
		}
		seen[name] = true
	}
	for name := range want {
		if !seen[name] {
			return fmt.Errorf("secret %s would be missing", name)
		}
	}
	return nil
}

// statement is one KEY=VALUE of a dotenv file: the key, and the byte span
// of the value's text (quotes included) in the file.
type statement struct {
	key              string
	valStart, valEnd int
}

// dotenvStatements finds the statements of src the way godotenv v1.5.1's
// parser does (parser.go: getStatementStart, locateKeyName,
// extractVarValue), keeping byte offsets, which godotenv does not report.
// godotenv first rewrites CRLF to LF; that moves no statement boundary, so
// the scan runs on the file as it is. An unquoted value's span stops before
// a trailing " # comment", which stays.
func dotenvStatements(src []byte) ([]statement, error) {
	var out []statement
	pos := 0
	for {
		// getStatementStart: skip white space and comment lines.
		i := bytes.IndexFunc(src[pos:], func(r rune) bool { return !unicode.IsSpace(r) })
		if i < 0 {
			return out, nil
		}
		pos += i
		if src[pos] == '#' {
			j := bytes.IndexByte(src[pos:], '\n')
			if j < 0 {
				return out, nil
			}
			pos += j
			continue
		}
		// locateKeyName.
		rest := bytes.TrimLeftFunc(src[pos:], isDotenvSpace)
		if t, ok := bytes.CutPrefix(rest, []byte("export")); ok && bytes.IndexFunc(t, isDotenvSpace) == 0 {
			rest = bytes.TrimLeftFunc(t, isDotenvSpace)
		}
		key, offset := "", 0
	loop:
		for i, c := range rest {
			r := rune(c)
			if isDotenvSpace(r) {
				continue
			}
			switch c {
			case '=', ':':
				key, offset = string(rest[:i]), i+1
				break loop
			case '_':
			default:
				if unicode.IsLetter(r) || unicode.IsNumber(r) || r == '.' {
					continue
				}
				return nil, fmt.Errorf("unexpected character at byte %d", len(src)-len(rest)+i)
			}
		}
		key = string(bytes.TrimRightFunc([]byte(key), unicode.IsSpace))
		val := bytes.TrimLeftFunc(rest[offset:], isDotenvSpace)
		start := len(src) - len(val)
		// extractVarValue.
		var end, next int
		if len(val) > 0 && (val[0] == '"' || val[0] == '\'') {
			q := val[0]
			end = -1
			for i := 1; i < len(val); i++ {
				if val[i] == q && val[i-1] != '\\' {
					end = start + i + 1
					break
				}
			}
			if end < 0 {
				return nil, fmt.Errorf("unterminated quoted value at byte %d", start)
			}
			next = end
		} else {
			// The value runs to the end of the line; the next statement
			// starts there, even after a lone CR.
			eol := bytes.IndexFunc(val, func(r rune) bool { return r == '\n' || r == '\r' })
			if eol < 0 {
				eol = len(val)
			}
			end, next = start+unquotedEnd(val[:eol]), start+eol
		}
		out = append(out, statement{key: key, valStart: start, valEnd: end})
		pos = next
	}
}

// unquotedEnd returns where an unquoted value's text ends in line: before
// the white space of a " # comment" (the last '#' that follows white space,
// as godotenv looks for it), else at the end of the line.
func unquotedEnd(line []byte) int {
	end := len(line)
	prevStart, prev := -1, rune(0)
	for i := 0; i < len(line); {
		r, n := utf8.DecodeRune(line[i:])
		if r == '#' && prevStart >= 0 && isDotenvSpace(prev) {
			end = prevStart
		}
		prevStart, prev = i, r
		i += n
	}
	return end
}

// SetLocal stores updates in the local secrets file at path: it reads the
// file (a missing file is a new, empty one), applies UpdateSecretsFile and
// replaces the file atomically, through a temporary file in the same
// directory, so a reader sees the old file or the new one, never a mix. The
// file keeps its permissions; a new one is made 0600. A symbolic link is
// followed and its target replaced. The secrets file is the only file a
// value is ever written to.
func SetLocal(path string, updates []Update) error {
	target := path
	if t, err := filepath.EvalSymlinks(path); err == nil {
		target = t
	}
	mode := fs.FileMode(0o600)
	data, err := os.ReadFile(target)
	switch {
	case err == nil:
		if fi, err := os.Stat(target); err == nil {
			mode = fi.Mode().Perm()
		}
	case errors.Is(err, fs.ErrNotExist):
		data = nil
	default:
		return &FileError{Path: path, kind: KindConfig, Reason: "cannot read it: " + unwrapPathErr(err).Error()}
	}
	updated, err := UpdateSecretsFile(path, data, updates)
	if err != nil {
		return err
	}
	if err := writeAtomic(target, updated, mode); err != nil {
		return &FileError{Path: path, kind: KindConfig, Reason: "cannot write it: " + unwrapPathErr(err).Error(),
			Hint: "check that its directory is writable"}
	}
	return nil
}

func writeAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(mode); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
