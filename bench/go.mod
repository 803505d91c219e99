module github.com/gorseq/rseq/bench

go 1.26.0

require github.com/gorseq/rseq v0.0.0

require (
	github.com/puzpuzpuz/xsync/v3 v3.5.1
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/gorseq/rseq => ../
