package extract

import (
	"crypto/sha256"
	"encoding/hex"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Tests for the fast paths of the parser and the hash: each is checked
// against the straightforward code it replaced.

// refCanonical is the canonical form as written before the fast paths:
// every string, key or value, goes through appendString.
func (d *doc) refCanonical(b []byte, n int32) []byte {
	nd := &d.nodes[n]
	switch nd.kind {
	case kNull:
		return append(b, "null"...)
	case kFalse:
		return append(b, "false"...)
	case kTrue:
		return append(b, "true"...)
	case kNumber:
		return append(b, d.str(nd.text)...)
	case kString:
		return appendString(b, d.str(nd.text))
	case kArray:
		b = append(b, '[')
		for i, e := range d.elems[nd.lo:nd.hi] {
			if i > 0 {
				b = append(b, ',')
			}
			b = d.refCanonical(b, e)
		}
		return append(b, ']')
	default:
		b = append(b, '{')
		for i, m := range d.members[nd.lo:nd.hi] {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, d.str(m.key))
			b = append(b, ':')
			b = d.refCanonical(b, m.val)
		}
		return append(b, '}')
	}
}

// checkCanonical compares the canonical form and the hash of every node of
// body with the reference, parsing with a pooled parser (which may hold
// arenas of an earlier body) and a fresh one.
func checkCanonical(t *testing.T, body []byte) {
	t.Helper()
	fresh, err := parse(body)
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	p := parserPool.Get().(*parser)
	defer p.release()
	if err := p.parse(body); err != nil {
		t.Fatalf("pooled parser: %v\n%s", err, body)
	}
	d := &p.doc
	if len(d.nodes) != len(fresh.nodes) || d.root != fresh.root {
		t.Fatalf("pooled parser: %d nodes root %d, fresh: %d nodes root %d", len(d.nodes), d.root, len(fresh.nodes), fresh.root)
	}
	for n := range int32(len(d.nodes)) {
		want := fresh.refCanonical(nil, n)
		if got := fresh.appendCanonical(nil, n); string(got) != string(want) {
			t.Fatalf("node %d: canonical\n got %s\nwant %s", n, got, want)
		}
		if got := d.appendCanonical(nil, n); string(got) != string(want) {
			t.Fatalf("node %d: pooled canonical\n got %s\nwant %s", n, got, want)
		}
		sum := sha256.Sum256(want)
		if got, want := d.hash(n), hex.EncodeToString(sum[:]); got != want {
			t.Fatalf("node %d: hash %s, want %s", n, got, want)
		}
	}
}

// TestCanonicalDifferential: the canonical bytes and hashes match the
// reference on all samples, random re-encodings of them (key order,
// whitespace, escapes), and strings with every kind of escape.
func TestCanonicalDifferential(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	names := slices.Sorted(func(yield func(string) bool) {
		for k := range Samples() {
			if !yield(k) {
				return
			}
		}
	})
	samples := Samples()
	for _, name := range names {
		body := samples[name]
		checkCanonical(t, body)
		v := decode(t, body)
		for range 50 {
			checkCanonical(t, reencode(v, rnd))
		}
	}
	for _, s := range []string{
		`{"b":1, "a":[true,false,null,-0.50e+10], "c":{}}`,
		`{"s":"\u00e9\/\"\\\b\f\n\r\t\u0001\u001f\u007f<>&\u2028"}`,
		`{"pair":"\ud83d\ude00","raw":"😀","\ud83d\ude00k":1}`,
		`{"lone":"\uD800x","low":"\udc00","rev":"\ude00\ud83d","\udc00":"k"}`,
		`{"😀":1,"～":2,"Z":3,"a":4,"":5}`,
		`{"long raw string without escapes, longer than eight bytes":"é😀 and more text past a word boundary"}`,
		`{"k\"q":"v\\w","x":"0123456\"","y":"01234567\\n"}`,
		`[ ]`, `"x"`, `1.0e+5`,
	} {
		checkCanonical(t, []byte(s))
	}
}

// TestSpecialBytes: the lowest flagged byte of specialBytes is the first
// '"', '\\' or control byte of the word, and nothing is flagged without one.
func TestSpecialBytes(t *testing.T) {
	special := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 }
	rnd := rand.New(rand.NewPCG(7, 8))
	check := func(b [8]byte) {
		var w uint64
		for i := 7; i >= 0; i-- {
			w = w<<8 | uint64(b[i])
		}
		want := 8
		for i, c := range b {
			if special(c) {
				want = i
				break
			}
		}
		m := specialBytes(w)
		got := 8
		if m != 0 {
			got = bits.TrailingZeros64(m) >> 3
		}
		if got != want || m&^0x8080808080808080 != 0 {
			t.Fatalf("% x: first special byte %d, want %d (mask %016x)", b, got, want, m)
		}
	}
	for pos := range 8 {
		for c := range 256 {
			for range 64 {
				var b [8]byte
				for i := range b {
					b[i] = byte(rnd.Uint32())
					if rnd.IntN(2) == 0 {
						// Bias towards the edges of the tests.
						b[i] = []byte{0x00, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff}[rnd.IntN(14)]
					}
				}
				b[pos] = byte(c)
				check(b)
			}
		}
	}
}

// TestPooledConcurrent: results do not depend on what a pooled parser held
// before, under concurrent use (run with -race).
func TestPooledConcurrent(t *testing.T) {
	type tc struct {
		body []byte
		r    Rules
		want IDs
		err  string
	}
	var cases []tc
	add := func(body []byte, r Rules) {
		// The reference answer, computed before any concurrency.
		c := tc{body: body, r: r}
		ids, err := Extract(body, r)
		if err != nil {
			c.err = err.Error()
		}
		c.want = ids
		cases = append(cases, c)
	}
	for name, body := range Samples() {
		add(body, rulesFor(name))
		add(body, Rules{Kind: KindGeneric})
	}
	add([]byte(`{"x":"\ud800","topicName":"v2.conversations.`+convID+`","eventBody":{"id":"\u0041"}}`), genesys)
	add([]byte(`{"a":1,"a":2}`), genesys)
	add([]byte(`{"a":[1,2,{"b":"`+strings.Repeat("x", 5000)+`"}]}`), Rules{Kind: KindGeneric, EventID: []string{"/a/2/b"}})
	add([]byte(`{"a":`), genesys)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(g), 9))
			for range 500 {
				c := cases[rnd.IntN(len(cases))]
				ids, err := Extract(c.body, c.r)
				gotErr := ""
				if err != nil {
					gotErr = err.Error()
				}
				if ids != c.want || gotErr != c.err {
					t.Errorf("%.60s: %+v %q, want %+v %q", c.body, ids, gotErr, c.want, c.err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestReleaseForgetsBody: a parser put back in the pool holds nothing of the
// body it parsed.
func TestReleaseForgetsBody(t *testing.T) {
	p := new(parser)
	if err := p.parse([]byte(`{"a":"\u00e9","b":[1]}`)); err != nil {
		t.Fatal(err)
	}
	decoded := p.decoded[:cap(p.decoded)]
	p.hash(p.root)
	p.release()
	if p.s != "" || len(p.nodes) != 0 || len(p.members) != 0 || len(p.elems) != 0 || len(p.canon) != 0 || len(p.decoded) != 0 {
		t.Errorf("released parser keeps state: %+v", p.doc)
	}
	for i, s := range decoded {
		if s != "" {
			t.Errorf("decoded[%d] = %q after release", i, s)
		}
	}
}

// FuzzCanonical: the fast canonical form matches the reference on any body
// the parser accepts.
func FuzzCanonical(f *testing.F) {
	for _, b := range Samples() {
		f.Add(b)
	}
	f.Add([]byte(`{"s":"\u00e9\/\"\\\b\f\n\r\t\u0001\ud800","k":"01234567\""}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := parse(body); err != nil {
			return
		}
		checkCanonical(t, body)
	})
}
