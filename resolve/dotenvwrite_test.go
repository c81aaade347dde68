package resolve

import (
	"errors"
	"strings"
	"testing"

	"github.com/joho/godotenv"
)

// readBack parses line between two neighbours with godotenv and returns
// KEY's value; it fails the test when the line leaks into its neighbours.
func readBack(t testing.TB, line string) string {
	t.Helper()
	src := "BEFORE=1\n" + line + "AFTER='2'\n"
	got, err := godotenv.Unmarshal(src)
	if err != nil {
		t.Fatalf("godotenv cannot parse the line %q: %v", line, err)
	}
	if got["BEFORE"] != "1" || got["AFTER"] != "2" || len(got) != 3 {
		t.Fatalf("the line %q leaks into its neighbours: %q", line, got)
	}
	return got["KEY"]
}

func TestDotenvValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value string
		want  string // the written form
	}{
		{"plain", "hunter2", `"hunter2"`},
		{"empty", "", `""`},
		{"spaces kept", "  two words  ", `"  two words  "`},
		{"multi-line PEM", "-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n", `"-----BEGIN KEY-----\nAAAA\n-----END KEY-----\n"`},
		{"CRLF", "a\r\nb", `"a\r\nb"`},
		{"lone CR", "a\rb", `"a\rb"`},
		{"double quotes inside", `say "hi" now`, `"say \"hi\" now"`},
		{"single quotes", `it's`, `"it's"`},
		{"dollar names are not expanded", `$HOME ${PATH} $(PWD) $`, `"\$HOME \${PATH} \$(PWD) \$"`},
		{"backslashes", `C:\path\n\$x`, `"C:\\path\\n\\\$x"`},
		{"escaped-looking", `\n\r\"x`, `"\\n\\r\\\"x"`},
		{"hash", "a #b", `"a #b"`},
		{"JSON", `{"type":"service_account","key":"-----BEGIN\nX"}`, `"{\"type\":\"service_account\",\"key\":\"-----BEGIN\\nX\"}"`},
		{"non-ASCII and NUL", "ü\x00€", "\"ü\x00€\""},
		{"invalid UTF-8", "\xff\xfe", "\"\xff\xfe\""},
		{"ends with a double quote: single-quoted", `say "hi"`, `'say "hi"'`},
		{"only a double quote", `"`, `'"'`},
		{"multi-line ending with a double quote", "a\n\"b\"", "'a\n\"b\"'"},
		{"ends with a backslash: unquoted", `C:\dir\`, `C:\dir\`},
		{"unquoted escapes dollars", `$HOME\`, `\$HOME\`},
		{"ends with a double quote and holds a single quote: unquoted", `it's "x"`, `it's "x"`},
		{"only a backslash", `\`, `\`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DotenvValue(tt.value)
			if err != nil {
				t.Fatalf("DotenvValue(%q): %v", tt.value, err)
			}
			if got != tt.want {
				t.Errorf("DotenvValue(%q) = %s, want %s", tt.value, got, tt.want)
			}
			if back := readBack(t, "KEY="+got+"\n"); back != tt.value {
				t.Errorf("godotenv read back %q, want %q", back, tt.value)
			}
		})
	}
}

func TestDotenvValueRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		value  string
		reason string
	}{
		{"multi-line ending with a backslash", "a\nb\\", "it ends with a backslash and spans several lines"},
		{"backslash with a space at the end", "a \\ ", ""}, // ends with a space: double-quoted, not refused
		{"leading space, ends with a backslash", " a\\", "it ends with a backslash and has white space at an end"},
		{"comment marker, ends with a backslash", "a #b\\", "it ends with a backslash and holds a # after white space"},
		{"leading quote, ends with a backslash", "'a\\", "it ends with a backslash and starts with a quote"},
		{"invalid UTF-8, ends with a backslash", "\xff\\", "it ends with a backslash and is not valid UTF-8"},
		{"single quote and lines, ends with a double quote", "it's\n\"x\"", "it ends with a double quote, holds a single quote and spans several lines"},
		{"CRLF, ends with a double quote", "a\r\n\"", "it ends with a double quote, holds a CRLF line break and spans several lines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DotenvValue(tt.value)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("DotenvValue(%q): %v", tt.value, err)
				}
				if back := readBack(t, "KEY="+got+"\n"); back != tt.value {
					t.Errorf("godotenv read back %q, want %q", back, tt.value)
				}
				return
			}
			var de *DotenvError
			if !errors.As(err, &de) {
				t.Fatalf("DotenvValue(%q) = %s, %v; want a *DotenvError", tt.value, got, err)
			}
			if de.Reason != tt.reason {
				t.Errorf("reason = %q, want %q", de.Reason, tt.reason)
			}
			if de.Kind() != KindUsage {
				t.Errorf("kind = %v, want KindUsage", de.Kind())
			}
		})
	}
}

func TestDotenvLine(t *testing.T) {
	t.Parallel()
	got, err := DotenvLine("DB_PASS", "a\"b")
	if err != nil {
		t.Fatal(err)
	}
	if want := "DB_PASS=\"a\\\"b\"\n"; got != want {
		t.Errorf("DotenvLine = %q, want %q", got, want)
	}
	if _, err := DotenvLine("K", "x\n\\"); err == nil || strings.Contains(err.Error(), "x\n") {
		t.Errorf("DotenvLine of an unwritable value: err = %v, want a refusal that does not quote the value", err)
	}
}

// FuzzDotenvRoundTrip checks the promise of DotenvValue: for any value,
// godotenv reads the written line back byte for byte, or the writer refuses
// it, and only for the shapes its doc comment names.
func FuzzDotenvRoundTrip(f *testing.F) {
	for _, s := range []string{
		"", "plain", "a\nb", "a\r\nb\r\n", `\`, `"`, `'`, `$`, `\$`, `\\$X`, `${X}`, `$(X)`, `a\`, `a"`,
		"-----BEGIN KEY-----\nQUJD\n-----END KEY-----\n", `{"k":"v\"q"}`, " # x", "a #b\\", "\x85x\\", "\xa0\\",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		written, err := DotenvValue(value)
		if err != nil {
			var de *DotenvError
			if !errors.As(err, &de) {
				t.Fatalf("DotenvValue(%q): %v is not a *DotenvError", value, err)
			}
			// Refusals are only for values a double-quoted form cannot end.
			if !strings.HasSuffix(value, `\`) && !strings.HasSuffix(value, `"`) {
				t.Fatalf("DotenvValue(%q) refused a value that can be double-quoted: %v", value, err)
			}
			if notSingleQuotable(value) == "" || notUnquotable(value) == "" {
				t.Fatalf("DotenvValue(%q) refused a value another form holds: %v", value, err)
			}
			return
		}
		if back := readBack(t, "KEY="+written+"\n"); back != value {
			t.Fatalf("DotenvValue(%q) = %s; godotenv reads back %q", value, written, back)
		}
	})
}
