package resolve

import (
	"strings"
	"unicode/utf8"
)

// DotenvError is a value that no dotenv line can hold so that godotenv
// reads it back byte for byte. Its text describes the value's shape, never
// its content.
type DotenvError struct {
	Reason string
}

func (e *DotenvError) Error() string {
	return "a dotenv line cannot hold this value: " + e.Reason
}

// Kind reports a usage error: the value can still be had another way.
func (e *DotenvError) Kind() Kind { return KindUsage }

// DotenvLine returns "KEY=VALUE\n" with VALUE written by DotenvValue.
func DotenvLine(key, value string) (string, error) {
	v, err := DotenvValue(value)
	if err != nil {
		return "", err
	}
	return key + "=" + v + "\n", nil
}

// DotenvValue writes value for the right-hand side of a dotenv line so that
// godotenv (v1.5.1, the parser runsecrets reads every dotenv file with)
// gives back exactly value, whatever bytes it holds.
//
// The form is double-quoted: godotenv turns \n and \r into line breaks,
// drops the backslash of any other \x except \$, and expands $NAME, ${NAME}
// and $(NAME) but not \$NAME. So a value is written with \\, \", \$, \n
// and \r escapes, and every other byte as it is; no raw line break is left,
// which also keeps godotenv's CRLF → LF rewrite of the whole file away.
//
// godotenv ends a quoted value at the first quote not preceded by a
// backslash, and trims quote characters off both ends, so a double-quoted
// value cannot end with a backslash or a double quote. Such a value is
// written single-quoted (literal: no escapes, no expansion) when it holds
// no single quote and no CRLF, or unquoted (literal up to the line's end,
// with \$ for $) when it is one line of valid UTF-8 without spaces at
// either end, a leading quote or a " #" comment marker. A value none of the
// three forms holds, such as several lines ending with a backslash, is
// refused with a *DotenvError.
func DotenvValue(value string) (string, error) {
	last := ""
	switch {
	case strings.HasSuffix(value, `\`):
		last = "a backslash"
	case strings.HasSuffix(value, `"`):
		last = "a double quote"
	default:
		return doubleQuoted(value), nil
	}
	notSingle := notSingleQuotable(value)
	if notSingle == "" {
		return "'" + value + "'", nil
	}
	notBare := notUnquotable(value)
	if notBare == "" {
		return strings.ReplaceAll(value, "$", `\$`), nil
	}
	reason := "it ends with " + last
	if last == "a double quote" {
		reason += ", " + notSingle
	}
	return "", &DotenvError{Reason: reason + " and " + notBare}
}

func doubleQuoted(value string) string {
	var b strings.Builder
	b.Grow(len(value) + 2)
	b.WriteByte('"')
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\\', '"', '$':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// notSingleQuotable says why value cannot be single-quoted, or "".
func notSingleQuotable(value string) string {
	switch {
	case strings.HasSuffix(value, `\`):
		return "ends with a backslash" // the closing quote would look escaped
	case strings.Contains(value, "'"):
		return "holds a single quote"
	case strings.Contains(value, "\r\n"):
		return "holds a CRLF line break" // godotenv rewrites CRLF to LF first
	}
	return ""
}

// notUnquotable says why value cannot be written unquoted, or "".
func notUnquotable(value string) string {
	switch {
	case value == "":
		return ""
	case strings.ContainsAny(value, "\n\r"):
		return "spans several lines"
	case !utf8.ValidString(value):
		return "is not valid UTF-8" // godotenv reads unquoted values as runes
	case value[0] == '"' || value[0] == '\'':
		return "starts with a quote"
	}
	first, _ := utf8.DecodeRuneInString(value)
	lastRune, _ := utf8.DecodeLastRuneInString(value)
	if isDotenvSpace(first) || isDotenvSpace(lastRune) {
		return "has white space at an end"
	}
	prev := rune(0)
	for _, r := range value {
		if r == '#' && isDotenvSpace(prev) {
			return "holds a # after white space" // the start of a comment
		}
		prev = r
	}
	return ""
}

// isDotenvSpace is godotenv's isSpace: white space that is not a line break.
func isDotenvSpace(r rune) bool {
	switch r {
	case '\t', '\v', '\f', '\r', ' ', 0x85, 0xA0:
		return true
	}
	return false
}
