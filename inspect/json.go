package inspect

import (
	"encoding/json"

	"github.com/gorseq/rseq/internal/jsonaddr"
)

// The JSON form of a Section and a Thread writes addresses as "0x..."
// strings (internal/jsonaddr: the convention of every rseq command);
// offsets, sizes and ids stay numbers.

// MarshalJSON writes s with its addresses in hexadecimal.
func (s Section) MarshalJSON() ([]byte, error) {
	type fields Section
	return json.Marshal(struct {
		fields
		Descriptor jsonaddr.Addr `json:"descriptor"`
		Start      jsonaddr.Addr `json:"start"`
		Abort      jsonaddr.Addr `json:"abort"`
	}{fields(s), jsonaddr.Addr(s.Descriptor), jsonaddr.Addr(s.Start), jsonaddr.Addr(s.Abort)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Section) UnmarshalJSON(b []byte) error {
	type fields Section
	v := struct {
		*fields
		Descriptor jsonaddr.Addr `json:"descriptor"`
		Start      jsonaddr.Addr `json:"start"`
		Abort      jsonaddr.Addr `json:"abort"`
	}{fields: (*fields)(s)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	s.Descriptor, s.Start, s.Abort = uint64(v.Descriptor), uint64(v.Start), uint64(v.Abort)
	return nil
}

// MarshalJSON writes t with its addresses (area, rseq_cs, ip) in
// hexadecimal.
func (t Thread) MarshalJSON() ([]byte, error) {
	type fields Thread
	return json.Marshal(struct {
		fields
		Area   jsonaddr.Addr `json:"area"`
		RseqCS jsonaddr.Addr `json:"rseq_cs"`
		IP     jsonaddr.Addr `json:"ip"`
	}{fields(t), jsonaddr.Addr(t.Area), jsonaddr.Addr(t.RseqCS), jsonaddr.Addr(t.IP)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (t *Thread) UnmarshalJSON(b []byte) error {
	type fields Thread
	v := struct {
		*fields
		Area   jsonaddr.Addr `json:"area"`
		RseqCS jsonaddr.Addr `json:"rseq_cs"`
		IP     jsonaddr.Addr `json:"ip"`
	}{fields: (*fields)(t)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	t.Area, t.RseqCS, t.IP = uint64(v.Area), uint64(v.RseqCS), uint64(v.IP)
	return nil
}
