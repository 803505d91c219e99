package rseq_test

import (
	"testing"

	"github.com/gorseq/rseq/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
