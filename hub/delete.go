package hub

import "errors"

// ErrTopicDeleted ends the terminals of a deleted topic (EndTopic): the
// HTTP API writes a "deleted" event as the stream's last.
var ErrTopicDeleted = errors.New("topic deleted")

// EndTopic ends every terminal of topic with ErrTopicDeleted. The node
// calls it when the topic is deleted (docs/design.md, "Topic lifecycle");
// a terminal that subscribes afterwards waits for a topic of that name to
// be created again, as for any unknown topic.
func (h *Hub) EndTopic(topic string) {
	h.mu.Lock()
	f := h.feeds[topic]
	h.mu.Unlock()
	if f == nil {
		return
	}
	f.mu.Lock() // lock order feed.mu → Terminal.mu (terminal.go)
	defer f.mu.Unlock()
	for t := range f.terms {
		t.fail(ErrTopicDeleted)
	}
}
