package wire

import (
	"time"

	"github.com/baton-pub/baton"
)

// Event type of the event stream: the topic was deleted (DELETE
// /v1/topics/{topic}); it is the stream's last event, its data a Deleted.
const EventDeleted = "deleted"

// Deleted is the data of a "deleted" event.
type Deleted struct {
	Topic string `json:"topic"`
}

// DeleteResponse answers DELETE /v1/topics/{topic}.
type DeleteResponse struct {
	Deleted baton.Deletion `json:"deleted"`
}

// Retention is the body of PUT /v1/topics/{topic}/retention and part of
// the answer of GET: items (0: the node's default, -1: no count limit) and
// age ("24h"; "" or absent: the node's default, "none": no age limit).
type Retention struct {
	Items int64  `json:"items"`
	Age   string `json:"age,omitempty"`
}

// RetentionResponse answers GET and PUT /v1/topics/{topic}/retention: the
// topic's own setting, and what the node applies (its defaults filled in;
// 0 and "" there mean no limit).
type RetentionResponse struct {
	Topic     string    `json:"topic"`
	Retention Retention `json:"retention"`
	Effective Retention `json:"effective"`
}

// RetentionOf writes a baton.Retention as the API does.
func RetentionOf(r baton.Retention) Retention {
	return Retention{Items: r.Items, Age: baton.FormatAge(r.Age)}
}

// Parse reads r as a baton.Retention and checks it for topic.
func (r Retention) Parse(topic string) (baton.Retention, error) {
	age, err := baton.ParseAge(r.Age)
	if err != nil {
		return baton.Retention{}, err
	}
	out := baton.Retention{Items: r.Items, Age: age}
	return out, baton.ValidateRetention(topic, out)
}

// EffectiveOf writes the limits a node applies: items, and age (0: none).
func EffectiveOf(items uint64, age time.Duration) Retention {
	e := Retention{Items: int64(items)}
	if age > 0 {
		e.Age = age.String()
	}
	return e
}
