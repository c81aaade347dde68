package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSetOptions(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		cmd     setCmd
		want    string // the options, or the error
		wantErr bool
	}{
		{name: "none", want: "type= tags=map[] nbf=0001-01-01T00:00:00Z exp=0001-01-01T00:00:00Z"},
		{name: "all", cmd: setCmd{ContentType: "text/plain", Tag: []string{"a=1", "b=x=y", "c="}, Expires: "2160h", NotBefore: "2026-01-01T00:00:00Z"},
			want: "type=text/plain tags=map[a:1 b:x=y c:] nbf=2026-01-01T00:00:00Z exp=2027-02-24T12:00:00Z"},
		{name: "tag without =", cmd: setCmd{Tag: []string{"a"}}, want: `--tag "a" is not K=V`, wantErr: true},
		{name: "tag without key", cmd: setCmd{Tag: []string{"=v"}}, want: `--tag "=v" is not K=V`, wantErr: true},
		{name: "tag twice", cmd: setCmd{Tag: []string{"a=1", "a=2"}}, want: "--tag a is given twice", wantErr: true},
		{name: "days", cmd: setCmd{Expires: "30d"}, want: `--expires "30d" is neither an RFC 3339 time nor a duration`, wantErr: true},
		{name: "past expiry", cmd: setCmd{Expires: "-1h"}, want: "--expires -1h is already past", wantErr: true},
		{name: "valid after expiry", cmd: setCmd{Expires: "1h", NotBefore: "2h"}, want: "--not-before is not before --expires", wantErr: true},
		{name: "content type too long", cmd: setCmd{ContentType: strings.Repeat("x", 256)}, want: "--content-type is 256 characters; Key Vault keeps at most 255", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, err := tt.cmd.options(now)
			if tt.wantErr {
				if err == nil || err.Error() != tt.want {
					t.Fatalf("err = %v, want %q", err, tt.want)
				}
				if exitCode(err) != exitUsage {
					t.Errorf("exit status %d, want %d", exitCode(err), exitUsage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := "type=" + o.ContentType + " tags=" + fmtMap(o.Tags) + " nbf=" + o.NotBefore.UTC().Format(time.RFC3339) + " exp=" + o.Expires.UTC().Format(time.RFC3339)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

func fmtMap(m map[string]string) string {
	if m == nil {
		return "map[]"
	}
	var parts []string
	for _, k := range []string{"a", "b", "c"} {
		if v, ok := m[k]; ok {
			parts = append(parts, k+":"+v)
		}
	}
	return "map[" + strings.Join(parts, " ") + "]"
}
