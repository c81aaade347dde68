package launcher

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

// helperEnv, set in the environment of the test binary itself, makes the
// binary act as a helper process instead of running tests: Exec replaces
// the calling process and Supervise installs signal handlers and reaps
// children, which must not happen inside the test process. The value is a
// JSON helperConfig.
const helperEnv = "LAUNCHER_TEST_HELPER"

// helperConfig tells a helper process what to do.
type helperConfig struct {
	Mode string `json:"mode"` // "exec" or "supervise"
	// Script is run as /bin/sh -c Script.
	Script string `json:"script"`
	// Env is the child's environment.
	Env []string `json:"env"`
	// GraceMS is RunSpec.Grace in milliseconds.
	GraceMS int `json:"grace_ms"`
	// Mask are the secret values to mask.
	Mask []string `json:"mask"`
	// MaskDelayMS is RunSpec.MaskDelay in milliseconds.
	MaskDelayMS int `json:"mask_delay_ms"`
	// TimeoutMS, if set, cancels Supervise's context after that long.
	TimeoutMS int `json:"timeout_ms"`
	// SharedBuffer passes one in-memory writer as both Stdout and Stderr
	// and copies it to the real stdout afterwards.
	SharedBuffer bool `json:"shared_buffer"`
	// Result is the file the helper writes its helperResult to.
	Result string `json:"result"`
	// Job is what a "session" helper runs as its foreground job.
	Job *helperConfig `json:"job,omitempty"`
}

// helperResult is what a supervise helper reports back.
type helperResult struct {
	Pid         int    `json:"pid"`
	Code        int    `json:"code"`
	Err         string `json:"err"`
	OnExitCalls int    `json:"on_exit_calls"`
	// Zombies are children of the helper left unreaped after Supervise.
	Zombies []int `json:"zombies"`
	// StdoutLink is where the helper's fd 1 points (/proc/self/fd/1).
	StdoutLink string `json:"stdout_link"`
	// Pgrp is the helper's process group and ForegroundAfter the
	// foreground group of its stdin terminal after Supervise (0 when
	// stdin is no terminal).
	Pgrp            int `json:"pgrp"`
	ForegroundAfter int `json:"foreground_after"`
	// Stops counts how often a session helper saw its job stop.
	Stops int `json:"stops"`
}

func TestMain(m *testing.M) {
	if v, ok := os.LookupEnv(helperEnv); ok {
		var cfg helperConfig
		if err := json.Unmarshal([]byte(v), &cfg); err != nil {
			fmt.Fprintln(os.Stderr, "helper: bad config:", err)
			os.Exit(3)
		}
		os.Exit(runHelper(cfg))
	}
	os.Exit(m.Run())
}

func runHelper(cfg helperConfig) int {
	switch cfg.Mode {
	case "exec":
		return execHelper(cfg)
	case "supervise":
		return superviseHelper(cfg)
	case "session":
		return sessionHelper(cfg)
	case "foreground-by-fork":
		return foregroundByForkHelper(cfg)
	}
	fmt.Fprintln(os.Stderr, "helper: unknown mode", cfg.Mode)
	return 3
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is filtered by the umask; set it exactly.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
