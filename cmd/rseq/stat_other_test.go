//go:build !linux

package main

import (
	"runtime"
	"strings"
	"testing"
)

func TestStatNotLinux(t *testing.T) {
	var out, errb strings.Builder
	if rc := run([]string{"stat", "--duration", "1s"}, &out, &errb); rc != statNoEvents || !strings.Contains(errb.String(), "not supported on "+runtime.GOOS) {
		t.Errorf("stat: exit %d, stderr %q", rc, errb.String())
	}
}
