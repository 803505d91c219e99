// Package jsonaddr is the JSON convention of the rseq command's reports
// (scan, ps, stat, torture): an address is a string of hexadecimal digits
// after "0x", as the tables print it, so that it survives any JSON reader
// (a 64-bit address does not fit a float64) and reads like the tables;
// offsets, lengths, sizes and counts are plain numbers.
package jsonaddr

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Addr is an address that marshals as "0x..." and unmarshals from that
// form or from a number (reports written before the convention).
type Addr uint64

// MarshalJSON writes a as a "0x"-prefixed hexadecimal string.
func (a Addr) MarshalJSON() ([]byte, error) {
	return []byte(`"0x` + strconv.FormatUint(uint64(a), 16) + `"`), nil
}

// UnmarshalJSON reads a "0x..." string or a number.
func (a *Addr) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n uint64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("address %s: want a \"0x...\" string or a number", b)
		}
		*a = Addr(n)
		return nil
	}
	if !strings.HasPrefix(s, "0x") {
		return fmt.Errorf("address %q: want a \"0x...\" string", s)
	}
	n, err := strconv.ParseUint(s[2:], 16, 64)
	if err != nil {
		return fmt.Errorf("address %q: %v", s, err)
	}
	*a = Addr(n)
	return nil
}
