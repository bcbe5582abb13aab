package baton

// NormalizeCompact is Normalize for an update whose value the caller has
// already checked with json.Valid and compacted as json.Compact does, e.g.
// while parsing it out of a request body. It checks the id and msg id as
// Normalize does, with the same errors, and makes a msg id if there is none;
// the value is neither scanned nor copied, so u.Value is shared with the
// result. A value that is not valid, compact JSON breaks the contract and is
// kept as given.
func NormalizeCompact(u Update) (Update, error) {
	if err := checkFields(u); err != nil {
		return u, err
	}
	if u.MsgID == "" {
		u.MsgID = NewMsgID()
	}
	return u, nil
}
