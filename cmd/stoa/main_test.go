package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestRunCommands(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		wantOut  string
	}{
		{[]string{"version"}, 0, "stoa "},
		{[]string{"help"}, 0, "Usage:"},
		{nil, 2, ""},
		{[]string{"frobnicate"}, 2, ""},
		{[]string{"serve", "-h"}, 0, ""},
		{[]string{"serve", "--nope"}, 2, ""},
		{[]string{"serve", "positional"}, 2, ""},
		{[]string{"serve"}, 1, ""}, // no API key
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tt.args, system{stdout: &stdout, stderr: &stderr, getenv: envMap(nil)})
		var msg bytes.Buffer
		if code := exitCode(err, &msg); code != tt.wantCode {
			t.Errorf("stoa %q: exit code %d (err %v), want %d", tt.args, code, err, tt.wantCode)
		}
		if tt.wantOut != "" && !strings.Contains(stdout.String(), tt.wantOut) {
			t.Errorf("stoa %q: stdout %q does not contain %q", tt.args, stdout.String(), tt.wantOut)
		}
		if err != nil && !errors.Is(err, flag.ErrHelp) && !strings.HasPrefix(msg.String(), "stoa: ") {
			t.Errorf("stoa %q: reported %q", tt.args, msg.String())
		}
	}
}
