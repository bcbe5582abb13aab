package integration

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-pub/baton"
	"github.com/baton-pub/baton/wire"
)

// streamIDVector is one id with Go's verdict, as test/streamid-vectors.js
// in clients/js reads it. Seqs are strings: a JSON number loses digits
// past 2^53 in JavaScript.
type streamIDVector struct {
	ID    string      `json:"id"`
	Named []string    `json:"named"`
	OK    bool        `json:"ok"`
	Pos   [][2]string `json:"pos"`
	Error string      `json:"error,omitempty"`
}

// TestJSStreamID checks that the JavaScript client's resume encoding
// (clients/js/src/streamid.ts) agrees with wire.StreamID and
// wire.ParseStreamID on the fuzz corpus of FuzzParseStreamID, the example
// of docs/api.md, and thousands of ids built by Go at random positions
// (powers of 32 and their neighbours, up to MaxSeq) and then mutated:
// every id one side accepts, the other accepts with the same positions,
// and encodes alike.
func TestJSStreamID(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node")
	}
	buildJS(t)
	var ids [][2]any // id, named
	fuzzNamed := []string{"a", "b"}
	corpus, err := filepath.Glob("../wire/testdata/fuzz/FuzzParseStreamID/*")
	if err != nil || len(corpus) == 0 {
		t.Fatalf("the fuzz corpus of FuzzParseStreamID: %v (%d files)", err, len(corpus))
	}
	for _, f := range corpus {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if q, ok := strings.CutPrefix(line, "string("); ok {
				s, err := strconv.Unquote(strings.TrimSuffix(q, ")"))
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				ids = append(ids, [2]any{s, fuzzNamed})
			}
		}
	}
	ids = append(ids, [2]any{"1qYaqGhI~news.x:_I", []string{"quotes.a", "quotes.b"}})

	rng := rand.New(rand.NewPCG(15, 16))
	pool := []string{"a", "b", "quotes.a", "quotes.b", "news.x", "x-1", "Z_9", strings.Repeat("t", baton.MaxTopicLen)}
	pos := func() uint64 {
		switch rng.IntN(4) {
		case 0:
			return rng.Uint64N(64)
		case 1: // around a power of 32: a digit more or fewer
			p := uint64(1) << (5 * rng.UintN(13))
			return p + uint64(rng.IntN(3)) - 1
		case 2:
			return rng.Uint64N(1 << 53)
		}
		return rng.Uint64N(baton.MaxSeq) + uint64(rng.IntN(2))
	}
	const mutate = "AZaz09-_~:.!1"
	for range 3000 {
		var named []string
		for _, n := range pool {
			if rng.IntN(3) == 0 {
				named = append(named, n)
			}
		}
		p := make([]uint64, len(named))
		for i := range p {
			p[i] = pos()
		}
		id := wire.NewStreamID(named, p)
		for _, n := range pool {
			if !slices.Contains(named, n) && rng.IntN(4) == 0 {
				id.Add(n, pos())
			}
		}
		s := string(id.Bytes())
		ids = append(ids, [2]any{s, named})
		for range 2 {
			b := []byte(s)
			i := rng.IntN(len(b))
			switch rng.IntN(3) {
			case 0:
				b[i] = mutate[rng.IntN(len(mutate))]
			case 1:
				b = slices.Delete(b, i, i+1)
			default:
				b = slices.Insert(b, i, mutate[rng.IntN(len(mutate))])
			}
			ids = append(ids, [2]any{string(b), named})
		}
	}

	var vectors []streamIDVector
	accepted := 0
	for _, x := range ids {
		id, named := x[0].(string), x[1].([]string)
		v := streamIDVector{ID: id, Named: named}
		sp, err := wire.ParseStreamID(id, named)
		if err != nil {
			v.Error = err.Error()
		} else {
			v.OK = true
			v.Pos = [][2]string{}
			accepted++
			for i, n := range named {
				v.Pos = append(v.Pos, [2]string{n, strconv.FormatUint(sp.Named[i], 10)})
			}
			for _, f := range foundOrder(id) {
				v.Pos = append(v.Pos, [2]string{f, strconv.FormatUint(sp.Found[f], 10)})
			}
		}
		if v.Named == nil {
			v.Named = []string{}
		}
		vectors = append(vectors, v)
	}
	if accepted < len(vectors)/4 || accepted == len(vectors) {
		t.Fatalf("%d of %d vectors valid: want both kinds in numbers", accepted, len(vectors))
	}
	file := filepath.Join(t.TempDir(), "vectors.json")
	b, err := json.Marshal(vectors)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "test/streamid-vectors.js", file)
	cmd.Dir = jsDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node test/streamid-vectors.js: %v\n%s", err, tail(out, 8192))
	}
	t.Logf("%d ids (%d valid): %s", len(vectors), accepted, strings.TrimSpace(string(out)))
}

// foundOrder is the topics found by a pattern in a valid id, in its order.
func foundOrder(id string) []string {
	var out []string
	for _, part := range strings.Split(id, "~")[1:] {
		name, _, _ := strings.Cut(part, ":")
		out = append(out, name)
	}
	return out
}
