package storetest

import (
	"bytes"
	"fmt"

	"github.com/baton-pub/baton"
)

// # Decisions: re-anchor records (see baton.Reanchors)
//
//   - R1 AddReanchor keeps the note byte for byte; Reanchors lists a
//     topic's records oldest first, none for a topic without any.
//   - R2 AddReanchor signals SignalCommit on the topic: the witnesses look
//     at it again.
//   - R3 A note that is empty or over MaxReanchorNote bytes, or a bad
//     topic, is ErrInvalid and stores nothing.
//   - R4 Deleting a topic with its ledger deletes its re-anchors.
func reanchorTests() []test {
	return []test{
		{"AddAndList", testReanchorAddAndList},
		{"Invalid", testReanchorInvalid},
		{"DeletedWithLedger", testReanchorDeleted},
	}
}

func testReanchorAddAndList(e *env) {
	topic := e.topic("")
	none, err := e.s.Reanchors(e.ctx, topic)
	e.noErr(err, "Reanchors of a topic without any")
	if len(none) != 0 {
		e.t.Fatalf("[R1] Reanchors of a topic without any: %d records", len(none))
	}
	e.appendN(topic, 1)
	sub := e.subscribe(topic, baton.SignalCommit)
	notes := [][]byte{[]byte("baton/x reanchor\n1\n\n— n1 sig\n"), {0, 1, 0xff, '\n'}}
	for i, n := range notes {
		e.noErr(e.s.AddReanchor(e.ctx, baton.Reanchor{Topic: topic, Note: n}), "AddReanchor %d", i)
		e.wake(sub, fmt.Sprintf("[R2] AddReanchor %d", i))
	}
	got, err := e.s.Reanchors(e.ctx, topic)
	e.noErr(err, "Reanchors")
	if len(got) != len(notes) {
		e.t.Fatalf("[R1] Reanchors: %d records, want %d", len(got), len(notes))
	}
	for i, r := range got {
		if r.Topic != topic || !bytes.Equal(r.Note, notes[i]) {
			e.t.Fatalf("[R1] Reanchors[%d] = {%s %q}, want {%s %q}", i, r.Topic, r.Note, topic, notes[i])
		}
	}
}

func testReanchorInvalid(e *env) {
	topic := e.topic("")
	for _, r := range []baton.Reanchor{{Topic: topic}, {Topic: topic, Note: make([]byte, baton.MaxReanchorNote+1)}, {Topic: "", Note: []byte("n")}} {
		e.wantErr(e.s.AddReanchor(e.ctx, r), baton.ErrInvalid, "[R3] AddReanchor of topic %q with a note of %d bytes", r.Topic, len(r.Note))
	}
	got, err := e.s.Reanchors(e.ctx, topic)
	e.noErr(err, "Reanchors")
	if len(got) != 0 {
		e.t.Fatalf("[R3] Reanchors after refused adds: %d records", len(got))
	}
}

func testReanchorDeleted(e *env) {
	topic := e.topic("")
	e.appendN(topic, 1)
	e.noErr(e.s.AddReanchor(e.ctx, baton.Reanchor{Topic: topic, Note: []byte("note")}), "AddReanchor")
	_, err := e.s.DeleteTopic(e.ctx, topic, baton.DeleteOptions{Ledger: true})
	e.noErr(err, "DeleteTopic with its ledger")
	got, err := e.s.Reanchors(e.ctx, topic)
	e.noErr(err, "Reanchors")
	if len(got) != 0 {
		e.t.Fatalf("[R4] Reanchors after the topic was deleted with its ledger: %d records", len(got))
	}
}
