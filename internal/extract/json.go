package extract

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// This file holds a small JSON parser instead of encoding/json because
// extract needs things encoding/json does not give cheaply: a nesting bound
// much lower than its 10000, duplicate-key detection, number literals kept as
// written, lone surrogates kept distinct, and a tree that can be hashed in
// canonical form without a second pass through reflection. It accepts exactly
// RFC 8259 JSON in UTF-8 (no BOM) with at most MaxDepth levels of nesting.

type kind uint8

const (
	kNull kind = iota
	kFalse
	kTrue
	kNumber
	kString
	kArray
	kObject
)

func (k kind) String() string {
	switch k {
	case kNull:
		return "null"
	case kFalse, kTrue:
		return "a boolean"
	case kNumber:
		return "a number"
	case kString:
		return "a string"
	case kArray:
		return "an array"
	default:
		return "an object"
	}
}

// node is one JSON value. Children live in the doc's arenas so that a whole
// body costs a handful of allocations, not one per value, and neither nodes
// nor members hold pointers: the garbage collector skips the arenas and
// filling them needs no write barriers (this cut BenchmarkExtract by a third).
type node struct {
	kind kind
	// For strings and numbers, the text. For objects, members[lo:hi]
	// (sorted by key); for arrays, elems[lo:hi].
	text
}

// text locates a string or a number: s[lo:hi] as written, or, when esc > 0,
// decoded[esc-1] (a string that had escapes). Decoded strings are WTF-8:
// lone surrogates are encoded like any other code point.
type text struct {
	lo, hi, esc int32
}

type member struct {
	key text
	val int32
}

// doc is a parsed body.
type doc struct {
	s       string // the body
	decoded []string
	nodes   []node
	members []member
	elems   []int32
	root    int32
	canon   []byte // scratch for hash
}

func (d *doc) str(t text) string {
	if t.esc > 0 {
		return d.decoded[t.esc-1]
	}
	return d.s[t.lo:t.hi]
}

type parser struct {
	doc
	pos   int
	depth int
	// Children of the containers being parsed; moved into the arenas when
	// their container closes, so each container's children are contiguous.
	stackM []member
	stackE []int32
}

func parse(body []byte) (*doc, error) {
	p := new(parser)
	if err := p.parse(body); err != nil {
		return nil, err
	}
	return &p.doc, nil
}

// parserPool caches parsers so that their arenas and scratch buffers are
// reused across calls: a pure cache, each parser is used by one call at a
// time and holds nothing of a body once put back (see release).
var parserPool = sync.Pool{New: func() any { return new(parser) }}

// maxPooledItems bounds the arenas kept in the pool, so that one huge body
// does not pin megabytes for the life of the process.
const maxPooledItems = 1 << 14

// release forgets the body and the decoded strings and returns p to the pool
// when its arenas are of a reasonable size.
func (p *parser) release() {
	if cap(p.nodes) > maxPooledItems || cap(p.members) > maxPooledItems || cap(p.elems) > maxPooledItems ||
		cap(p.stackM) > maxPooledItems || cap(p.stackE) > maxPooledItems || cap(p.decoded) > maxPooledItems ||
		cap(p.canon) > 16*maxPooledItems {
		return
	}
	clear(p.decoded)
	*p = parser{
		doc: doc{
			decoded: p.decoded[:0],
			nodes:   p.nodes[:0],
			members: p.members[:0],
			elems:   p.elems[:0],
			canon:   p.canon[:0],
		},
		stackM: p.stackM[:0],
		stackE: p.stackE[:0],
	}
	parserPool.Put(p)
}

// parse parses body into p, which is fresh or released.
func (p *parser) parse(body []byte) error {
	if len(body) > math.MaxInt32 {
		// Offsets are int32 to keep the arenas small.
		return malformed("body of %d bytes is larger than 2 GiB", len(body))
	}
	// Validate UTF-8 once, with the fast ASCII path of utf8.Valid, so the
	// string scanner only looks for quotes, backslashes and control bytes.
	// Outside strings only ASCII is valid JSON anyway.
	if !utf8.Valid(body) {
		return malformed("not JSON: invalid UTF-8 at offset %d", invalidUTF8(body))
	}
	p.s = string(body)
	// Rough size hint: Genesys bodies have about one value per 25 bytes.
	n := len(body)/25 + 8
	if cap(p.nodes) < n {
		p.nodes = make([]node, 0, n)
	}
	if cap(p.members) < n {
		p.members = make([]member, 0, n)
	}
	if cap(p.stackM) < 32 {
		p.stackM = make([]member, 0, 32)
	}
	if cap(p.stackE) < 16 {
		p.stackE = make([]int32, 0, 16)
	}
	root, err := p.value()
	if err != nil {
		return err
	}
	p.skipSpace()
	if p.pos != len(p.s) {
		return malformed("trailing data after the JSON value at offset %d", p.pos)
	}
	p.root = root
	return nil
}

func (p *parser) syntax(what string) error {
	if p.pos >= len(p.s) {
		return malformed("not JSON: unexpected end of input, want %s", what)
	}
	return malformed("not JSON: unexpected %s at offset %d, want %s", quoteByte(p.s[p.pos]), p.pos, what)
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return "'" + string(rune(c)) + "'"
	}
	const hexdigits = "0123456789abcdef"
	return "byte 0x" + string(hexdigits[c>>4]) + string(hexdigits[c&15])
}

func (p *parser) add(n node) int32 {
	p.nodes = append(p.nodes, n)
	return int32(len(p.nodes) - 1)
}

func (p *parser) skipSpace() {
	for p.pos < len(p.s) {
		switch p.s[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) value() (int32, error) {
	p.skipSpace()
	if p.pos >= len(p.s) {
		return 0, p.syntax("a value")
	}
	switch c := p.s[p.pos]; {
	case c == '{':
		return p.object()
	case c == '[':
		return p.array()
	case c == '"':
		t, err := p.stringLit()
		if err != nil {
			return 0, err
		}
		return p.add(node{kind: kString, text: t}), nil
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	case strings.HasPrefix(p.s[p.pos:], "true"):
		p.pos += 4
		return p.add(node{kind: kTrue}), nil
	case strings.HasPrefix(p.s[p.pos:], "false"):
		p.pos += 5
		return p.add(node{kind: kFalse}), nil
	case strings.HasPrefix(p.s[p.pos:], "null"):
		p.pos += 4
		return p.add(node{kind: kNull}), nil
	}
	return 0, p.syntax("a value")
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > MaxDepth {
		return malformed("nesting deeper than %d levels at offset %d", MaxDepth, p.pos)
	}
	return nil
}

func (p *parser) object() (int32, error) {
	if err := p.enter(); err != nil {
		return 0, err
	}
	start := p.pos
	p.pos++ // '{'
	base := len(p.stackM)
	p.skipSpace()
	if p.pos < len(p.s) && p.s[p.pos] == '}' {
		p.pos++
	} else {
		for {
			p.skipSpace()
			if p.pos >= len(p.s) || p.s[p.pos] != '"' {
				return 0, p.syntax("an object key")
			}
			key, err := p.stringLit()
			if err != nil {
				return 0, err
			}
			p.skipSpace()
			if p.pos >= len(p.s) || p.s[p.pos] != ':' {
				return 0, p.syntax("':'")
			}
			p.pos++
			v, err := p.value()
			if err != nil {
				return 0, err
			}
			p.stackM = append(p.stackM, member{key, v})
			p.skipSpace()
			if p.pos < len(p.s) && p.s[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.pos < len(p.s) && p.s[p.pos] == '}' {
				p.pos++
				break
			}
			return 0, p.syntax("',' or '}'")
		}
	}
	ms := p.stackM[base:]
	// Sorted members give the canonical order, cheap duplicate detection and
	// binary-search lookups.
	p.sortMembers(ms)
	for i := 1; i < len(ms); i++ {
		if k := p.str(ms[i].key); k == p.str(ms[i-1].key) {
			return 0, malformed("duplicate key %s in the object at offset %d", shortQuote(k), start)
		}
	}
	lo := int32(len(p.members))
	p.members = append(p.members, ms...)
	p.stackM = p.stackM[:base]
	p.depth--
	return p.add(node{kind: kObject, text: text{lo: lo, hi: int32(len(p.members))}}), nil
}

// sortMembers sorts ms by key. Small objects, the usual case, use an
// insertion sort without the indirect comparison calls of slices.SortFunc.
// Any correct sort gives the same order: keys are unique or the object is
// refused.
func (p *parser) sortMembers(ms []member) {
	if len(ms) > 12 {
		slices.SortFunc(ms, func(a, b member) int { return strings.Compare(p.str(a.key), p.str(b.key)) })
		return
	}
	for i := 1; i < len(ms); i++ {
		m := ms[i]
		k := p.str(m.key)
		j := i
		for ; j > 0 && keyAfter(p.str(ms[j-1].key), k); j-- {
			ms[j] = ms[j-1]
		}
		ms[j] = m
	}
}

// keyAfter reports a > b, deciding on the first byte without a call when it
// differs (it usually does).
func keyAfter(a, b string) bool {
	if a != "" && b != "" && a[0] != b[0] {
		return a[0] > b[0]
	}
	return a > b
}

// shortQuote quotes at most 64 bytes of s for an error message.
func shortQuote(s string) string {
	const max = 64
	if len(s) <= max {
		return quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return quote(s[:cut]) + "…"
}

func quote(s string) string {
	var b []byte
	return string(appendString(b, s))
}

func (p *parser) array() (int32, error) {
	if err := p.enter(); err != nil {
		return 0, err
	}
	p.pos++ // '['
	base := len(p.stackE)
	p.skipSpace()
	if p.pos < len(p.s) && p.s[p.pos] == ']' {
		p.pos++
	} else {
		for {
			v, err := p.value()
			if err != nil {
				return 0, err
			}
			p.stackE = append(p.stackE, v)
			p.skipSpace()
			if p.pos < len(p.s) && p.s[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.pos < len(p.s) && p.s[p.pos] == ']' {
				p.pos++
				break
			}
			return 0, p.syntax("',' or ']'")
		}
	}
	lo := int32(len(p.elems))
	p.elems = append(p.elems, p.stackE[base:]...)
	p.stackE = p.stackE[:base]
	p.depth--
	return p.add(node{kind: kArray, text: text{lo: lo, hi: int32(len(p.elems))}}), nil
}

// number validates an RFC 8259 number and keeps its literal.
func (p *parser) number() (int32, error) {
	start := p.pos
	s := p.s
	i := p.pos
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	default:
		p.pos = i
		return 0, p.syntax("a digit")
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			p.pos = i
			return 0, p.syntax("a digit after '.'")
		}
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			p.pos = i
			return 0, p.syntax("a digit in the exponent")
		}
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	}
	p.pos = i
	return p.add(node{kind: kNumber, text: text{lo: int32(start), hi: int32(i)}}), nil
}

// stringLit parses a string at p.pos (which is '"').
func (p *parser) stringLit() (text, error) {
	p.pos++ // '"'
	start := p.pos
	s := p.s
	// Fast path: no escapes, the decoded string is a substring of the body.
	// Skip eight bytes at a time while none is '"', '\\' or a control byte;
	// the byte loop below then looks at the first one that may be.
	i := start
	for ; i+8 <= len(s); i += 8 {
		t := s[i : i+8] // one bounds check; the loads below combine into one
		w := uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24 |
			uint64(t[4])<<32 | uint64(t[5])<<40 | uint64(t[6])<<48 | uint64(t[7])<<56
		if m := specialBytes(w); m != 0 {
			// Bytes below the lowest flagged one are not special.
			i += bits.TrailingZeros64(m) >> 3
			break
		}
	}
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			p.pos = i + 1
			return text{lo: int32(start), hi: int32(i)}, nil
		case c == '\\':
			return p.strSlow(start, i)
		case c < 0x20:
			p.pos = i
			return text{}, malformed("not JSON: control character %s in a string at offset %d", quoteByte(c), i)
		default:
			i++
		}
	}
	p.pos = len(s)
	return text{}, p.syntax("'\"' to close the string")
}

// specialBytes flags with 0x80 the bytes of w (little endian) that are '"',
// '\\' or below 0x20. The classic SWAR has-zero and has-less tests never miss
// such a byte and only flag a wrong one above a right one, so the lowest
// flagged byte is always special and the bytes below it never are.
func specialBytes(w uint64) uint64 {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	q := w ^ (lsb * '"')
	bs := w ^ (lsb * '\\')
	return ((q-lsb)&^q | (bs-lsb)&^bs | (w-lsb*0x20)&^w) & msb
}

// strSlow decodes a string with escapes; s[start:i] has none, s[i] is '\\'.
func (p *parser) strSlow(start, i int) (text, error) {
	s := p.s
	b := make([]byte, 0, i-start+16)
	b = append(b, s[start:i]...)
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			p.pos = i + 1
			p.decoded = append(p.decoded, string(b))
			return text{lo: int32(start), hi: int32(i), esc: int32(len(p.decoded))}, nil
		case c == '\\':
			if i+1 >= len(s) {
				p.pos = i + 1
				return text{}, p.syntax("an escape")
			}
			switch e := s[i+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
				i += 2
			case 'b':
				b = append(b, '\b')
				i += 2
			case 'f':
				b = append(b, '\f')
				i += 2
			case 'n':
				b = append(b, '\n')
				i += 2
			case 'r':
				b = append(b, '\r')
				i += 2
			case 't':
				b = append(b, '\t')
				i += 2
			case 'u':
				r, ok := hex4(s, i+2)
				if !ok {
					return text{}, malformed("not JSON: bad \\u escape at offset %d", i)
				}
				i += 6
				if 0xd800 <= r && r < 0xdc00 && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if r2, ok := hex4(s, i+2); ok && 0xdc00 <= r2 && r2 < 0xe000 {
						r = 0x10000 + (r-0xd800)<<10 + (r2 - 0xdc00)
						i += 6
					}
				}
				b = appendWTF8(b, r)
			default:
				return text{}, malformed("not JSON: bad escape %s at offset %d", quoteByte(e), i)
			}
		case c < 0x20:
			return text{}, malformed("not JSON: control character %s in a string at offset %d", quoteByte(c), i)
		default:
			b = append(b, c)
			i++
		}
	}
	p.pos = len(s)
	return text{}, p.syntax("'\"' to close the string")
}

// invalidUTF8 returns the offset of the first invalid UTF-8 sequence in b.
func invalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// appendWTF8 appends r as UTF-8, encoding surrogates (which utf8.AppendRune
// would turn into U+FFFD) like any other 3-byte code point. The body itself
// is valid UTF-8, so such bytes can only come from a lone surrogate escape and
// stay distinct from every other string.
func appendWTF8(b []byte, r rune) []byte {
	if 0xd800 <= r && r < 0xe000 {
		return append(b, 0xe0|byte(r>>12), 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
	}
	return utf8.AppendRune(b, r)
}

// member returns the value of key in object n.
func (d *doc) member(n int32, key string) (int32, bool) {
	nd := &d.nodes[n]
	if nd.kind != kObject {
		return 0, false
	}
	ms := d.members[nd.lo:nd.hi]
	i, ok := slices.BinarySearchFunc(ms, key, func(m member, k string) int { return strings.Compare(d.str(m.key), k) })
	if !ok {
		return 0, false
	}
	return ms[i].val, true
}

func (d *doc) has(n int32, key string) bool {
	_, ok := d.member(n, key)
	return ok
}

// hash returns the lowercase hex SHA-256 of the canonical JSON of node n.
func (d *doc) hash(n int32) string {
	// The canonical form is never longer than the body it came from: it drops
	// whitespace and only writes escapes the input also had to use.
	if cap(d.canon) < len(d.s) {
		d.canon = make([]byte, 0, len(d.s))
	}
	d.canon = d.appendCanonical(d.canon[:0], n)
	sum := sha256.Sum256(d.canon)
	var h [2 * sha256.Size]byte
	hex.Encode(h[:], sum[:])
	return string(h[:])
}

// appendCanonical appends the canonical JSON of node n (see the package
// documentation). Recursion is bounded by MaxDepth.
func (d *doc) appendCanonical(b []byte, n int32) []byte {
	nd := &d.nodes[n]
	switch nd.kind {
	case kNull:
		return append(b, "null"...)
	case kFalse:
		return append(b, "false"...)
	case kTrue:
		return append(b, "true"...)
	case kNumber:
		return append(b, d.s[nd.lo:nd.hi]...)
	case kString:
		return d.appendText(b, nd.text)
	case kArray:
		b = append(b, '[')
		for i, e := range d.elems[nd.lo:nd.hi] {
			if i > 0 {
				b = append(b, ',')
			}
			b = d.appendCanonical(b, e)
		}
		return append(b, ']')
	default:
		b = append(b, '{')
		for i, m := range d.members[nd.lo:nd.hi] {
			if i > 0 {
				b = append(b, ',')
			}
			b = d.appendText(b, m.key)
			b = append(b, ':')
			b = d.appendCanonical(b, m.val)
		}
		return append(b, '}')
	}
}

// appendText appends string t as a canonical JSON string. A string written
// without escapes (esc == 0) is its own canonical form: stringLit took the
// fast path only because it has no '"', '\\' or control byte, and the body
// is valid UTF-8, so it has no WTF-8 surrogate either; appendString would
// copy it unchanged.
func (d *doc) appendText(b []byte, t text) []byte {
	if t.esc > 0 {
		return appendString(b, d.decoded[t.esc-1])
	}
	b = append(b, '"')
	b = append(b, d.s[t.lo:t.hi]...)
	return append(b, '"')
}

// appendString appends s (decoded, WTF-8) as a canonical JSON string.
func appendString(b []byte, s string) []byte {
	const hexdigits = "0123456789abcdef"
	b = append(b, '"')
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && !(c == 0xed && i+2 < len(s) && s[i+1] >= 0xa0) {
			i++
			continue
		}
		b = append(b, s[last:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
			i++
		case '\b':
			b = append(b, '\\', 'b')
			i++
		case '\f':
			b = append(b, '\\', 'f')
			i++
		case '\n':
			b = append(b, '\\', 'n')
			i++
		case '\r':
			b = append(b, '\\', 'r')
			i++
		case '\t':
			b = append(b, '\\', 't')
			i++
		case 0xed: // a WTF-8 surrogate: ED A0..BF 80..BF
			r := rune(c&0x0f)<<12 | rune(s[i+1]&0x3f)<<6 | rune(s[i+2]&0x3f)
			b = append(b, '\\', 'u', hexdigits[r>>12], hexdigits[r>>8&15], hexdigits[r>>4&15], hexdigits[r&15])
			i += 3
		default: // other control characters
			b = append(b, '\\', 'u', '0', '0', hexdigits[c>>4], hexdigits[c&15])
			i++
		}
		last = i
	}
	if last < len(s) {
		b = append(b, s[last:]...)
	}
	return append(b, '"')
}
