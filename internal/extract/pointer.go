package extract

import (
	"errors"
	"strings"
)

// CheckPointer reports why p is not a usable RFC 6901 JSON pointer (as
// Rules.Validate does for each of its pointers), or nil.
func CheckPointer(p string) error { return checkPointer(p) }

// checkPointer reports whether p is a usable RFC 6901 pointer. The empty
// pointer (the whole document) is refused: the document is an object or an
// array, never an id, so configuring it is a mistake.
func checkPointer(p string) error {
	if p == "" {
		return errors.New("empty JSON pointer (want e.g. \"/id\")")
	}
	if p[0] != '/' {
		return errors.New(`JSON pointer must start with "/"`)
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '~' && (i+1 >= len(p) || p[i+1] != '0' && p[i+1] != '1') {
			return errors.New(`JSON pointer has "~" not followed by "0" or "1"`)
		}
	}
	return nil
}

// resolve follows pointer p (already checked) from node n. It does not
// allocate unless a token contains an escape.
func (d *doc) resolve(n int32, p string) (int32, bool) {
	for p != "" {
		p = p[1:] // the '/' before each token
		tok := p
		if i := strings.IndexByte(p, '/'); i >= 0 {
			tok, p = p[:i], p[i:]
		} else {
			p = ""
		}
		nd := &d.nodes[n]
		switch nd.kind {
		case kObject:
			if strings.IndexByte(tok, '~') >= 0 {
				tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
			}
			v, ok := d.member(n, tok)
			if !ok {
				return 0, false
			}
			n = v
		case kArray:
			i, ok := arrayIndex(tok)
			if !ok || i >= int(nd.hi-nd.lo) {
				return 0, false
			}
			n = d.elems[int(nd.lo)+i]
		default:
			return 0, false
		}
	}
	return n, true
}

// arrayIndex parses an RFC 6901 array index: "0" or digits without a leading
// zero. "-" (past the end) never resolves.
func arrayIndex(tok string) (int, bool) {
	if tok == "" || len(tok) > 9 || len(tok) > 1 && tok[0] == '0' {
		return 0, false
	}
	i := 0
	for _, c := range []byte(tok) {
		if c < '0' || c > '9' {
			return 0, false
		}
		i = i*10 + int(c-'0')
	}
	return i, true
}
