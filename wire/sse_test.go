package wire

import (
	"bytes"
	"errors"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// ev is an Event copied out of the reader's buffers.
type ev struct {
	Type, Data, ID string
	Retry          time.Duration
}

func readAll(t testing.TB, r io.Reader, size int) ([]ev, error) {
	t.Helper()
	var out []ev
	er := NewEventReader(r, size)
	for {
		e, err := er.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev{e.Type, string(e.Data), string(e.ID), e.Retry})
	}
}

func TestReadEvents(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []ev
	}{
		{"item", "id: 7\nevent: item\ndata: {\"seq\":7}\n\n",
			[]ev{{Type: "item", Data: `{"seq":7}`, ID: "7"}}},
		{"default type", "data: x\n\n", []ev{{Type: "message", Data: "x"}}},
		{"other type", "event: other\ndata: x\n\n", []ev{{Type: "other", Data: "x"}}},
		{"type is per event", "event: reset\ndata: x\n\ndata: y\n\n", []ev{{Type: "reset", Data: "x"}, {Type: "message", Data: "y"}}},
		{"multi-line data", "data: a\ndata:b\ndata:  c\ndata\n\n",
			[]ev{{Type: "message", Data: "a\nb\n c\n"}}},
		{"LF", "id: 1\ndata: a\n\nid: 2\ndata: b\n\n",
			[]ev{{Type: "message", Data: "a", ID: "1"}, {Type: "message", Data: "b", ID: "2"}}},
		{"CRLF", "id: 1\r\ndata: a\r\n\r\nid: 2\r\ndata: b\r\n\r\n",
			[]ev{{Type: "message", Data: "a", ID: "1"}, {Type: "message", Data: "b", ID: "2"}}},
		{"CR", "data: a\rdata: b\r\rdata: c\r\r",
			[]ev{{Type: "message", Data: "a\nb"}, {Type: "message", Data: "c"}}},
		{"mixed line ends", "data: a\r\ndata: b\rdata: c\n\r\n",
			[]ev{{Type: "message", Data: "a\nb\nc"}}},
		{"BOM", "\ufeffdata: a\n\n", []ev{{Type: "message", Data: "a"}}},
		{"BOM only at the start", "data: a\n\n\ufeffdata: b\n\n", []ev{{Type: "message", Data: "a"}}},
		{"comments and heartbeats", ": hello\n\n: hb\ndata: a\n: in between\n\n",
			[]ev{{Type: "message", Data: "a"}}},
		{"id carries over", "id: 5\ndata: a\n\ndata: b\n\nid\ndata: c\n\n",
			[]ev{{Type: "message", Data: "a", ID: "5"}, {Type: "message", Data: "b", ID: "5"}, {Type: "message", Data: "c", ID: ""}}},
		{"id with NUL ignored", "id: 5\ndata: a\n\nid: 6\x007\ndata: b\n\n",
			[]ev{{Type: "message", Data: "a", ID: "5"}, {Type: "message", Data: "b", ID: "5"}}},
		{"id without data sets the id", "id: 9\n\ndata: a\n\n", []ev{{Type: "message", Data: "a", ID: "9"}}},
		{"retry", "retry: 1500\n\nretry: x\ndata: a\n\nretry: 1x\ndata: b\n\n",
			[]ev{{Type: "message", Data: "a", Retry: 1500 * time.Millisecond}, {Type: "message", Data: "b", Retry: 1500 * time.Millisecond}}},
		{"event without data not dispatched", "event: reset\n\ndata: a\n\n", []ev{{Type: "message", Data: "a"}}},
		{"unknown field ignored", "foo: bar\ndata: a\n\n", []ev{{Type: "message", Data: "a"}}},
		{"colon in value", "data: a: b\n\n", []ev{{Type: "message", Data: "a: b"}}},
		{"cut-off event dropped", "data: a\n\ndata: b\n", []ev{{Type: "message", Data: "a"}}},
		{"cut-off line dropped", "data: a\n\ndata: b", []ev{{Type: "message", Data: "a"}}},
		{"empty", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for name, r := range map[string]func() io.Reader{
				"whole":    func() io.Reader { return strings.NewReader(c.in) },
				"one byte": func() io.Reader { return iotest.OneByteReader(strings.NewReader(c.in)) },
				"half":     func() io.Reader { return iotest.HalfReader(strings.NewReader(c.in)) },
			} {
				// 16 bytes, the smallest bufio buffer: lines span refills.
				for _, size := range []int{0, 16} {
					got, err := readAll(t, r(), size)
					if err != nil {
						t.Fatalf("%s, buffer %d: %v", name, size, err)
					}
					if !reflect.DeepEqual(got, c.want) {
						t.Fatalf("%s, buffer %d: got %+v, want %+v", name, size, got, c.want)
					}
				}
			}
		})
	}
}

// TestReadEventsCRNotWaiting: a line ended by CR is returned before the
// next byte arrives (which might be the LF of a CRLF), or a stream whose
// server ends lines with CR would stall one event behind.
func TestReadEventsCRNotWaiting(t *testing.T) {
	pr, pw := io.Pipe()
	defer pr.Close()
	go func() { _, _ = pw.Write([]byte("data: a\r\r")) }()
	e, err := NewEventReader(pr, 0).Next()
	if err != nil || string(e.Data) != "a" {
		t.Fatalf("got %q, %v", e.Data, err)
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
	got, err := readAll(t, io.MultiReader(strings.NewReader("data: a\n\ndata: b\n"), iotest.ErrReader(boom)), 0)
	if err != boom || len(got) != 1 {
		t.Fatalf("read error: %v, %d events", err, len(got))
	}
	long := "data: " + strings.Repeat("x", MaxEventLine+1) + "\n\n"
	if _, err := readAll(t, strings.NewReader(long), 0); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("long line: %v", err)
	}
	// A line longer than the buffer and under the limit is fine.
	big := strings.Repeat("y", 1<<20)
	got, err = readAll(t, strings.NewReader("data: "+big+"\n\n"), 4096)
	if err != nil || len(got) != 1 || got[0].Data != big {
		t.Fatalf("1 MiB line: %v", err)
	}
}

func TestEventReaderAllocs(t *testing.T) {
	frame := []byte("id: 12345\nevent: item\ndata: {\"seq\":12345,\"id\":\"a\",\"value\":1}\n\n: hb\n\n")
	src := bytes.NewReader(nil)
	er := NewEventReader(src, 4096)
	stream := bytes.Repeat(frame, 50)
	allocs := testing.AllocsPerRun(20, func() {
		src.Reset(stream)
		for {
			if _, err := er.Next(); err != nil {
				break
			}
		}
	})
	if allocs > 0 {
		t.Fatalf("%v allocations per 50 events", allocs)
	}
}

func TestEventDecoders(t *testing.T) {
	e := Event{Type: "item", ID: []byte("3"), Data: []byte(`{"seq":3,"id":"a","value":{"x":1},"hash":"` + strings.Repeat("ab", 32) + `","epoch":2,"publisher":"n1","msg_id":"m"}`)}
	d, err := e.Item()
	if err != nil || d.Seq != 3 || d.ID != "a" || string(d.Value) != `{"x":1}` || d.Epoch != 2 || d.Publisher != "n1" || d.MsgID != "m" {
		t.Fatalf("item %+v %v", d, err)
	}
	if seq, err := e.Seq(); err != nil || seq != 3 {
		t.Fatalf("seq %d %v", seq, err)
	}
	if _, err := e.Reset(); err == nil {
		t.Fatal("an item decoded as a reset")
	}
	r, err := Event{Type: "reset", Data: []byte(`{"earliest":6}`)}.Reset()
	if err != nil || r.Earliest != 6 {
		t.Fatalf("reset %+v %v", r, err)
	}
	if _, err := (Event{ID: []byte("x")}).Seq(); err == nil {
		t.Fatal("bad id parsed")
	}
}

// FuzzReadEvents: the reader never fails on any input but with
// ErrLineTooLong, gives the same events however the input is split into
// reads and whatever its buffer size, and agrees with a plain reading of
// the standard (reference).
func FuzzReadEvents(f *testing.F) {
	for _, s := range []string{
		"id: 7\nevent: item\ndata: {\"seq\":7}\n\n",
		"data: a\rdata: b\r\r", "id: 1\r\ndata: a\r\n\r\n", "\ufeffdata: a\n\n",
		": c\nretry: 10\nid\ndata\n\n", "id: 5\x00\ndata: x\n\n", "event: reset\n\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		want := reference(in)
		for _, size := range []int{0, 16} {
			for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in))} {
				got, err := readAll(t, r, size)
				if err != nil {
					t.Fatalf("buffer %d: %v", size, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("buffer %d: got %+v, want %+v", size, got, want)
				}
			}
		}
	})
}

// reference parses an event stream as the HTML standard words it, on a
// string in memory: a second reading to compare the reader with.
func reference(in string) []ev {
	in = strings.TrimPrefix(in, "\ufeff")
	var lines []string
	for {
		i := strings.IndexAny(in, "\r\n")
		if i < 0 {
			break // a line without its end is not a line
		}
		lines = append(lines, in[:i])
		if strings.HasPrefix(in[i:], "\r\n") {
			i++
		}
		in = in[i+1:]
	}
	var (
		out           []ev
		typ, data, id string
		hasData       bool
		retry         time.Duration
	)
	for _, line := range lines {
		if line == "" {
			if hasData {
				t := typ
				if t == "" {
					t = "message"
				}
				out = append(out, ev{t, data, id, retry})
			}
			typ, data, hasData = "", "", false
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			typ = value
		case "data":
			if hasData {
				data += "\n"
			}
			data += value
			hasData = true
		case "id":
			if !strings.Contains(value, "\x00") {
				id = value
			}
		case "retry":
			// A delay too long for a time.Duration is ignored.
			ms, err := strconv.ParseInt(value, 10, 64)
			if err == nil && value[0] >= '0' && value[0] <= '9' && ms <= math.MaxInt64/int64(time.Millisecond) {
				retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return out
}

// BenchmarkEventReader reads item events as a bench terminal does, with a
// 4 KiB buffer (the fan-out scenario's).
func BenchmarkEventReader(b *testing.B) {
	frame := []byte("id: 123456\nevent: item\ndata: {\"seq\":123456,\"id\":\"k-17\",\"value\":{\"t\":1764734400000000000},\"hash\":\"" + strings.Repeat("ab", 32) + "\",\"epoch\":3,\"publisher\":\"n1\",\"msg_id\":\"src-1-000123456\"}\n\n")
	stream := bytes.Repeat(frame, 1000)
	src := bytes.NewReader(nil)
	er := NewEventReader(src, 4096)
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		src.Reset(stream)
		for {
			if _, err := er.Next(); err != nil {
				break
			}
		}
	}
}
