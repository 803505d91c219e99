// Package torture runs a program under ptrace and makes each of its rseq
// critical sections abort at every instruction boundary, the data behind
// "rseq torture".
//
// The program is started traced (following its threads, forks, vforks and
// execs). Its critical sections are found by the scanner (package scan) on
// every ELF object mapped into it: at each exec, whenever the dynamic
// loader reports a change of the loaded objects (a breakpoint on its
// _dl_debug_state, so that a library loaded by dlopen is covered before its
// code runs), and on a periodic check of the executable mappings. The
// sections are read from the files, never from memory, which holds the
// breakpoints and, before the loader ran, unrelocated descriptors.
//
// A breakpoint (int3 on x86-64, brk #0 on arm64) is set on every instruction
// of every section that still needs aborts (on arm64, where every
// instruction is 4 bytes long, on every 4-byte word of the section); in a Go program only once main.main is reached, so
// that package initialization (which may check its own code, as this
// module's does) sees none. When a thread reaches one, the tracer does what
// the kernel does on preemption inside a section: if the thread's rseq_cs
// (the area comes from PTRACE_GET_RSEQ_CONFIGURATION) points at a
// descriptor whose range holds the instruction, it checks the registered
// signature before abort_ip (a mismatch gets the thread the kernel's
// SIGSEGV), moves the thread to abort_ip and clears rseq_cs. Each point is
// aborted Config.Reps times and then disarmed, so every pass of a section
// is aborted at the first point still armed on its path and the retry
// reaches the next one. A hit while rseq_cs does not cover the instruction
// (the code ran without a registration) is stepped over without an abort.
//
// Real aborts are injected at random too: forced CPU migrations
// (sched_setaffinity on the program's threads, the previous mask restored
// at the next injection) and, for programs that catch it, SIGURG (Go
// programs do). Signals delivered to a handler while a thread is inside a
// section are counted per section: on Linux 6.18 the kernel aborts those
// sections even though the tracer sees the signal first.
//
// Stalls (see stall.go for the details and why they are legal schedules):
// a post-commit stall holds a thread at the first instruction after a
// section's commit while every other thread runs on that CPU, so that a
// value the section gave up and reads after its commit is taken by another
// thread first; a commit stall aborts a pass at its commit, moves the
// thread to another CPU, keeps every other thread off that CPU while the
// restarted pass runs, and holds it at its commit while the others run
// everywhere else, so that a section that reads its index before the
// restart label commits over the old CPU's slot. Config.Stalls of each
// kind are made in every section (DefaultStalls), and reported per
// section with the forced aborts that moved their thread.
//
// The program's own checks decide correctness: it must exit as it does
// untortured.
//
// The report tells apart, for each point not covered: a section the
// program never entered (no thread reached any of its points); a point of
// an entered section unreachable in this run (never reached although the
// torture ran to its end and every point reached was covered, so nothing
// kept a pass from it: the body of a loop that never iterates, say); and a
// missed point, with the reason (not reached before the torture ended,
// still behind earlier points needing aborts, or a ptrace request or memory
// write that failed there). Report.EnteredCoverage measures the entered
// sections less their unreachable points; Report.Coverage every point.
//
// Closing Config.Stop (on SIGINT, say) ends the run at once: the program is
// killed and the partial report comes back with Interrupted set. A program
// still running at the end of Config.Grace is killed too (Killed).
//
// Run works on linux/amd64 and linux/arm64; elsewhere it returns an error
// wrapping errors.ErrUnsupported.
package torture
