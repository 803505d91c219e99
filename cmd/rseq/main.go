// Command rseq inspects and tests Linux restartable sequences (rseq).
//
// Usage:
//
//	rseq doctor [--json]          what rseq support this machine and process have
//	rseq scan [flags] FILE...     list and validate critical sections in ELF files
//	rseq ps [--json] PID...       show the rseq registration of every thread
//	rseq torture [flags] -- CMD   force aborts at every instruction of CMD's sections
//	rseq stat [flags]             live abort counts per section, for one process or all
//	rseq bench [flags]            compare per-CPU counters with their peers
//
// Each subcommand lives in its own file of this directory and registers itself
// with register from an init function.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
)

// A command is one subcommand of rseq.
type command struct {
	name    string
	summary string
	// run executes the subcommand with the arguments after its name and
	// returns the process exit status.
	run func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{}

// register adds a subcommand; it is called from init functions.
func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("rseq: subcommand registered twice: " + c.name)
	}
	commands[c.name] = c
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: rseq COMMAND [ARGS]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nrun 'rseq COMMAND -h' for a command's flags")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "rseq: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}
