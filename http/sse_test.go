package http

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func readAll(t *testing.T, r io.Reader) ([]Event, error) {
	t.Helper()
	var out []Event
	err := ReadEvents(r, func(ev Event) error {
		out = append(out, ev)
		return nil
	})
	return out, err
}

func TestReadEvents(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []Event
	}{
		{"item", "id: 7\nevent: item\ndata: {\"seq\":7}\n\n",
			[]Event{{Type: "item", Data: `{"seq":7}`, ID: "7"}}},
		{"default type", "data: x\n\n", []Event{{Type: "message", Data: "x"}}},
		{"multi-line data", "data: a\ndata:b\ndata:  c\ndata\n\n",
			[]Event{{Type: "message", Data: "a\nb\n c\n"}}},
		{"CRLF", "id: 1\r\ndata: a\r\n\r\nid: 2\r\ndata: b\r\n\r\n",
			[]Event{{Type: "message", Data: "a", ID: "1"}, {Type: "message", Data: "b", ID: "2"}}},
		{"CR", "data: a\rdata: b\r\rdata: c\r\r",
			[]Event{{Type: "message", Data: "a\nb"}, {Type: "message", Data: "c"}}},
		{"BOM", "\ufeffdata: a\n\n", []Event{{Type: "message", Data: "a"}}},
		{"comments and heartbeats", ": hello\n\n: hb\ndata: a\n: in between\n\n",
			[]Event{{Type: "message", Data: "a"}}},
		{"id carries over", "id: 5\ndata: a\n\ndata: b\n\nid\ndata: c\n\n",
			[]Event{{Type: "message", Data: "a", ID: "5"}, {Type: "message", Data: "b", ID: "5"}, {Type: "message", Data: "c", ID: ""}}},
		{"id with NUL ignored", "id: 5\ndata: a\n\nid: 6\x007\ndata: b\n\n",
			[]Event{{Type: "message", Data: "a", ID: "5"}, {Type: "message", Data: "b", ID: "5"}}},
		{"id without data sets the id", "id: 9\n\ndata: a\n\n", []Event{{Type: "message", Data: "a", ID: "9"}}},
		{"retry", "retry: 1500\n\nretry: x\ndata: a\n\n",
			[]Event{{Type: "message", Data: "a", Retry: 1500 * time.Millisecond}}},
		{"event without data not dispatched", "event: reset\n\ndata: a\n\n", []Event{{Type: "message", Data: "a"}}},
		{"unknown field ignored", "foo: bar\ndata: a\n\n", []Event{{Type: "message", Data: "a"}}},
		{"colon in value", "data: a: b\n\n", []Event{{Type: "message", Data: "a: b"}}},
		{"cut-off event dropped", "data: a\n\ndata: b\n", []Event{{Type: "message", Data: "a"}}},
		{"cut-off line dropped", "data: a\n\ndata: b", []Event{{Type: "message", Data: "a"}}},
		{"empty", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for name, r := range map[string]io.Reader{
				"whole":    strings.NewReader(c.in),
				"one byte": iotest.OneByteReader(strings.NewReader(c.in)),
			} {
				got, err := readAll(t, r)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Fatalf("%s: got %+v, want %+v", name, got, c.want)
				}
			}
		})
	}
}

func TestReadEventsErrors(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := ReadEvents(strings.NewReader("data: a\n\ndata: b\n\n"), func(Event) error {
		n++
		return stop
	})
	if err != stop || n != 1 {
		t.Fatalf("fn error: %v after %d events", err, n)
	}
	boom := errors.New("boom")
	got, err := readAll(t, io.MultiReader(strings.NewReader("data: a\n\ndata: b\n"), iotest.ErrReader(boom)))
	if err != boom || len(got) != 1 {
		t.Fatalf("read error: %v, %d events", err, len(got))
	}
	long := "data: " + strings.Repeat("x", MaxEventLine+1) + "\n\n"
	if _, err := readAll(t, strings.NewReader(long)); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("long line: %v", err)
	}
	// A long line under the limit is fine.
	big := strings.Repeat("y", 1<<20)
	got, err = readAll(t, strings.NewReader("data: "+big+"\n\n"))
	if err != nil || len(got) != 1 || got[0].Data != big {
		t.Fatalf("1 MiB line: %v", err)
	}
}

func TestEventDecoders(t *testing.T) {
	ev := Event{Type: "item", ID: "3", Data: `{"seq":3,"id":"a","value":{"x":1},"hash":"` + strings.Repeat("ab", 32) + `","epoch":2,"publisher":"n1","msg_id":"m"}`}
	d, err := ev.Item()
	if err != nil || d.Seq != 3 || d.ID != "a" || string(d.Value) != `{"x":1}` || d.Epoch != 2 || d.Publisher != "n1" || d.MsgID != "m" {
		t.Fatalf("item %+v %v", d, err)
	}
	if seq, err := ev.Seq(); err != nil || seq != 3 {
		t.Fatalf("seq %d %v", seq, err)
	}
	if _, err := ev.Reset(); err == nil {
		t.Fatal("an item decoded as a reset")
	}
	r, err := Event{Type: "reset", Data: `{"earliest":6}`}.Reset()
	if err != nil || r.Earliest != 6 {
		t.Fatalf("reset %+v %v", r, err)
	}
	if _, err := (Event{ID: "x"}).Seq(); err == nil {
		t.Fatal("bad id parsed")
	}
}
