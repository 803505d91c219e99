//go:build linux

package main

import (
	"strings"
	"syscall"
	"testing"
)

func TestParseErrno(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want syscall.Errno
		err  string
	}{
		{"ENOSYS", syscall.ENOSYS, ""},
		{"EPERM", syscall.EPERM, ""},
		{"EACCES", syscall.EACCES, ""},
		{"13", syscall.EACCES, ""},
		{"4095", 4095, ""},
		{"0", 0, "out of range"},
		{"4096", 0, "out of range"},
		{"-1", 0, "out of range"},
		{"enosys", 0, `unknown errno name "enosys"`},
		{"", 0, "unknown errno name"},
	} {
		got, err := parseErrno(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseErrno(%q) = %d, %v; want an error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseErrno(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}
