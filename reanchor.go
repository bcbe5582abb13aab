package baton

// Reanchor is the signed record of an operator accepting that a topic's
// ledger lost writes: the store's ledger stands as it is from a seq on,
// and the witnesses' copies of the lost range give way to it only through
// this record (docs/ledger.md, "Lost writes and re-anchoring"). Note is a
// signed note made by package ledger; the store keeps it byte for byte and
// checks no signature: witnesses and auditors do.
type Reanchor struct {
	Topic string `json:"topic"`
	Note  []byte `json:"note"`
}

// Bounds of the re-anchor records: a note is a few lines, and a topic is
// re-anchored by hand, rarely.
const (
	MaxReanchorNote = 4096
	MaxReanchors    = 1000
)

// ValidateReanchor checks the argument of Reanchors.AddReanchor: a valid
// topic and a note of 1 to MaxReanchorNote bytes.
func ValidateReanchor(r Reanchor) error {
	if err := ValidTopic(r.Topic); err != nil {
		return err
	}
	if len(r.Note) == 0 || len(r.Note) > MaxReanchorNote {
		return Invalidf("note", "a re-anchor note of 1 to %d bytes is required", MaxReanchorNote)
	}
	return nil
}
