package wire

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/baton-pub/baton"
)

func TestPosDigits(t *testing.T) {
	for _, c := range []struct {
		p    uint64
		want string
	}{{0, "A"}, {31, "f"}, {32, "hA"}, {1023, "_f"}, {1024, "hgA"}, {baton.MaxSeq, "n" + strings.Repeat("_", 11) + "f"}} {
		if got := string(AppendPos(nil, c.p)); got != c.want {
			t.Errorf("%d: %q, want %q", c.p, got, c.want)
		}
		p, rest, err := parsePos(c.want + "~")
		if err != nil || p != c.p || rest != "~" {
			t.Errorf("parse %q: %d %q %v", c.want, p, rest, err)
		}
	}
	for _, bad := range []string{"", "h", "gA", "h~", "!", strings.Repeat("_", 13) + "f", "o" + strings.Repeat("_", 11) + "f"} {
		if _, _, err := parsePos(bad); err == nil {
			t.Errorf("parse %q: no error", bad)
		}
	}
}

// TestStreamIDIncremental moves positions, finds and drops topics at
// random: the id kept up to date in place equals a fresh encoding and
// parses back to the positions.
func TestStreamIDIncremental(t *testing.T) {
	named := []string{"a", "b.c", "d"}
	pos := []uint64{0, 5, 1 << 20}
	id := NewStreamID(named, pos)
	found := map[string]uint64{}
	var order []string
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		switch k := r.IntN(10); {
		case k < 6:
			j := r.IntN(len(named))
			if r.IntN(4) == 0 {
				pos[j] /= 1 + uint64(r.IntN(1000)) // a reset may move a position back
			} else {
				pos[j] += uint64(r.IntN(3)) << uint(r.IntN(40))
			}
			id.Set(named[j], pos[j])
		case k < 8 && len(order) > 0:
			tp := order[r.IntN(len(order))]
			found[tp] += uint64(r.IntN(100))
			id.Set(tp, found[tp])
		case k < 9:
			tp := "f" + string(rune('a'+r.IntN(20)))
			if _, ok := found[tp]; !ok {
				found[tp] = uint64(r.IntN(1000))
				order = append(order, tp)
				id.Add(tp, found[tp])
			}
		case len(order) > 0:
			j := r.IntN(len(order))
			id.Remove(order[j])
			delete(found, order[j])
			order = slices.Delete(order, j, j+1)
		}
		fresh := NewStreamID(named, pos)
		for _, tp := range order {
			fresh.Add(tp, found[tp])
		}
		if string(id.Bytes()) != string(fresh.Bytes()) {
			t.Fatalf("step %d: id %q, fresh %q", i, id.Bytes(), fresh.Bytes())
		}
		sp, err := ParseStreamID(string(id.Bytes()), named)
		if err != nil || !slices.Equal(sp.Named, pos) || len(sp.Found) != len(found) {
			t.Fatalf("step %d: parse %q: %+v %v", i, id.Bytes(), sp, err)
		}
		for tp, p := range found {
			if sp.Found[tp] != p {
				t.Fatalf("step %d: %s at %d, want %d", i, tp, sp.Found[tp], p)
			}
		}
	}
}

func TestStreamIDExample(t *testing.T) {
	// The example of docs/api.md.
	id := NewStreamID([]string{"quotes.a", "quotes.b"}, []uint64{5, 40})
	id.Add("news.x", 1000)
	const want = "1" + "Ke2w" + "F" + "hI" + "~news.x:" + "_I"
	if got := string(id.Bytes()); got[0] != '1' || got[5:] != want[5:] {
		t.Fatalf("id %q, want %q (check digits aside)", got, want)
	}
	t.Logf("id %s", id.Bytes())
}

func TestParsePositions(t *testing.T) {
	got, err := ParsePositions("a:1,b.c:20")
	if err != nil || got["a"] != 1 || got["b.c"] != 20 || len(got) != 2 {
		t.Fatalf("%v %v", got, err)
	}
	if s := FormatPositions(got); s != "a:1,b.c:20" {
		t.Fatalf("format %q", s)
	}
	for _, bad := range []string{"a", "a:", "a:-1", "a:+1", "a:1,a:2", "a b:1", "a:99999999999999999999", ",", "a:1,"} {
		if _, err := ParsePositions(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// FuzzParseStreamID: the parser never panics, and what it accepts
// encodes back to the same id.
func FuzzParseStreamID(f *testing.F) {
	named := []string{"a", "b"}
	id := NewStreamID(named, []uint64{3, 70000})
	id.Add("q.x", 9)
	f.Add(string(id.Bytes()))
	f.Add(string(NewStreamID(named, []uint64{0, 0}).Bytes()))
	f.Add("1")
	f.Add("1AAAA")
	f.Add("7")
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseStreamID(s, named)
		if err != nil {
			return
		}
		back := NewStreamID(named, sp.Named)
		// Found topics in the order the id had them.
		rest := s
		for {
			i := strings.IndexByte(rest, '~')
			if i < 0 {
				break
			}
			name, _, _ := strings.Cut(rest[i+1:], ":")
			back.Add(name, sp.Found[name])
			rest = rest[i+1:]
		}
		if string(back.Bytes()) != s {
			t.Fatalf("parsed %q as %+v, which encodes as %q", s, sp, back.Bytes())
		}
	})
}
