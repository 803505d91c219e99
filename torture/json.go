package torture

import (
	"encoding/json"

	"github.com/gorseq/rseq/internal/jsonaddr"
)

// MarshalJSON writes r with its addresses (start, abort) as "0x..."
// strings, the convention of every rseq command (internal/jsonaddr);
// offsets and counts stay numbers.
func (r SectionReport) MarshalJSON() ([]byte, error) {
	type fields SectionReport
	return json.Marshal(struct {
		fields
		Start jsonaddr.Addr `json:"start"`
		Abort jsonaddr.Addr `json:"abort"`
	}{fields(r), jsonaddr.Addr(r.Start), jsonaddr.Addr(r.Abort)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *SectionReport) UnmarshalJSON(b []byte) error {
	type fields SectionReport
	v := struct {
		*fields
		Start jsonaddr.Addr `json:"start"`
		Abort jsonaddr.Addr `json:"abort"`
	}{fields: (*fields)(r)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	r.Start, r.Abort = uint64(v.Start), uint64(v.Abort)
	return nil
}
