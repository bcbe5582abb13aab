package baton

// NormalizeCompact is Normalize for an update whose value the caller has
// already checked with json.Valid and compacted as json.Compact does, e.g.
// while parsing it out of a request body. It checks the id and msg id as
// Normalize does, with the same errors, and makes a msg id if there is none;
// the value is neither scanned nor copied, so u.Value is shared with the
// result. A value that is not valid, compact JSON breaks the contract and is
// kept as given.
func NormalizeCompact(u Update) (Update, error) {
	if u.ID == "" {
		return u, Invalidf("id", "missing")
	}
	if err := validText("id", u.ID, MaxIDLen); err != nil {
		return u, err
	}
	if err := validText("msg_id", u.MsgID, MaxMsgIDLen); err != nil {
		return u, err
	}
	if len(u.Value) == 0 {
		return u, Invalidf("value", "missing")
	}
	if u.MsgID == "" {
		u.MsgID = NewMsgID()
	}
	return u, nil
}
