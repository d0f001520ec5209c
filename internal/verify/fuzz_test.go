package verify

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
)

// FuzzVerifyHMAC: a random header and body never panic, and a valid signature
// (in any accepted spelling) always verifies.
// validPrefix mirrors the Prefix rule of New.
func validPrefix(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] >= 0x7f {
			return false
		}
	}
	return true
}

func FuzzVerifyHMAC(f *testing.F) {
	f.Add("k", []byte(`{"id":"1"}`), "sha256=abc", "sha256=", false, uint8(0))
	f.Add("genesys-om", []byte(`{"type":"Text","text":"hi"}`), "", "", true, uint8(1))
	f.Add("\x00", []byte{}, "sha256==", "SHA256=", true, uint8(2))
	f.Fuzz(func(t *testing.T, key string, body []byte, header, prefix string, b64 bool, variant uint8) {
		enc := EncodingHex
		if b64 {
			enc = EncodingBase64
		}
		v, err := New(Config{Type: TypeHMACSHA256, Header: "X-Sig", Secret: key, Prefix: prefix, Encoding: enc})
		if err != nil {
			if key != "" && validPrefix(prefix) {
				t.Fatalf("New: %v", err)
			}
			return
		}
		// Random header: no panic, and only ErrUnauthorized.
		if err := v.Verify(http.Header{"X-Sig": {header}}, body); err != nil && !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("error does not wrap ErrUnauthorized: %v", err)
		}
		// A valid signature verifies.
		sum := sign(key, body)
		var sig string
		switch {
		case !b64 && variant%2 == 0:
			sig = hex.EncodeToString(sum)
		case !b64:
			sig = strings.ToUpper(hex.EncodeToString(sum))
		case variant%4 == 0:
			sig = base64.StdEncoding.EncodeToString(sum)
		case variant%4 == 1:
			sig = base64.RawStdEncoding.EncodeToString(sum)
		case variant%4 == 2:
			sig = base64.URLEncoding.EncodeToString(sum)
		default:
			sig = base64.RawURLEncoding.EncodeToString(sum)
		}
		p := prefix
		if variant&8 != 0 {
			p = strings.ToUpper(p)
		}
		if err := v.Verify(http.Header{"X-Sig": {p + sig}}, body); err != nil {
			t.Fatalf("valid signature %q rejected: %v", p+sig, err)
		}
		// And fails for any other body.
		other := append([]byte{0}, body...)
		if err := v.Verify(http.Header{"X-Sig": {p + sig}}, other); err == nil {
			t.Fatal("signature accepted for another body")
		}
	})
}
