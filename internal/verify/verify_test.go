package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

const (
	secret   = "s3cr3t-current-7f9a2c"
	previous = "s3cr3t-previous-41be0d"
)

// An Open Messaging outbound message, as Genesys signs it.
var omBody = []byte(`{"id":"c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4","channel":{"platform":"Open","to":{"id":"customer-7781"}},"type":"Text","text":"Thanks!","direction":"Outbound"}`)

func sign(key string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return m.Sum(nil)
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func mustNew(t *testing.T, c Config) Verifier {
	t.Helper()
	v, err := New(c)
	if err != nil {
		t.Fatalf("New(%v): %v", c, err)
	}
	return v
}

func TestVerify(t *testing.T) {
	omSig := "sha256=" + base64.StdEncoding.EncodeToString(sign(secret, omBody))
	ghSig := "sha256=" + hex.EncodeToString(sign(secret, omBody))
	tampered := append([]byte(nil), omBody...)
	tampered[len(tampered)-3] ^= 1

	shared := Config{Type: "shared-secret", Secret: secret, PreviousSecret: previous}
	bear := Config{Type: "bearer", Secret: secret, PreviousSecret: previous}
	bas := Config{Type: "basic", Username: "genesys", Secret: secret, PreviousSecret: previous}
	omCfg := Config{Type: "hmac-sha256", Prefix: "sha256=", Encoding: "base64", Secret: secret, PreviousSecret: previous}
	ghCfg := Config{Type: "hmac-sha256", Header: "x-hub-signature-256", Prefix: "sha256=", Secret: secret}
	plainHex := Config{Type: "hmac-sha256", Header: "X-Signature", Secret: secret}

	tests := []struct {
		name string
		cfg  Config
		h    http.Header
		body []byte
		ok   bool
	}{
		{"none accepts anything", Config{Type: "none"}, nil, nil, true},

		{"shared: current", shared, hdr("X-Hookline-Secret", secret), nil, true},
		{"shared: previous", shared, hdr("x-hookline-secret", previous), nil, true},
		{"shared: wrong", shared, hdr("X-Hookline-Secret", secret+"x"), nil, false},
		{"shared: prefix of secret", shared, hdr("X-Hookline-Secret", secret[:5]), nil, false},
		{"shared: missing", shared, hdr("Authorization", secret), nil, false},
		{"shared: empty", shared, hdr("X-Hookline-Secret", ""), nil, false},
		{"shared: two headers", shared, hdr("X-Hookline-Secret", secret, "X-Hookline-Secret", "x"), nil, false},
		{"shared: custom header", Config{Type: "shared-secret", Header: "x-genesys-token", Secret: secret}, hdr("X-Genesys-Token", secret), nil, true},
		{"shared: default header ignored when custom", Config{Type: "shared-secret", Header: "X-Genesys-Token", Secret: secret}, hdr("X-Hookline-Secret", secret), nil, false},

		{"bearer: current", bear, hdr("Authorization", "Bearer "+secret), nil, true},
		{"bearer: scheme case", bear, hdr("Authorization", "bEARER "+previous), nil, true},
		{"bearer: wrong", bear, hdr("Authorization", "Bearer nope"), nil, false},
		{"bearer: no scheme", bear, hdr("Authorization", secret), nil, false},
		{"bearer: basic scheme", bear, hdr("Authorization", "Basic "+secret), nil, false},
		{"bearer: empty token", bear, hdr("Authorization", "Bearer "), nil, false},
		{"bearer: missing", bear, nil, nil, false},

		{"basic: current", bas, hdr("Authorization", basicAuth("genesys", secret)), nil, true},
		{"basic: previous", bas, hdr("Authorization", "basic "+strings.TrimPrefix(basicAuth("genesys", previous), "Basic ")), nil, true},
		{"basic: wrong password", bas, hdr("Authorization", basicAuth("genesys", "x")), nil, false},
		{"basic: wrong user", bas, hdr("Authorization", basicAuth("genesys2", secret)), nil, false},
		{"basic: not base64", bas, hdr("Authorization", "Basic %%%"), nil, false},
		{"basic: no colon", bas, hdr("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("genesys"))), nil, false},
		{"basic: bearer scheme", bas, hdr("Authorization", "Bearer "+secret), nil, false},

		{"hmac: open messaging base64", omCfg, hdr("X-Hub-Signature-256", omSig), omBody, true},
		{"hmac: prefix case-insensitive", omCfg, hdr("X-Hub-Signature-256", "SHA256="+strings.TrimPrefix(omSig, "sha256=")), omBody, true},
		{"hmac: base64 unpadded", omCfg, hdr("X-Hub-Signature-256", strings.TrimRight(omSig, "=")), omBody, true},
		{"hmac: base64 url alphabet", omCfg, hdr("X-Hub-Signature-256", "sha256="+base64.URLEncoding.EncodeToString(sign(secret, omBody))), omBody, true},
		{"hmac: previous key", omCfg, hdr("X-Hub-Signature-256", "sha256="+base64.StdEncoding.EncodeToString(sign(previous, omBody))), omBody, true},
		{"hmac: open messaging tampered body", omCfg, hdr("X-Hub-Signature-256", omSig), tampered, false},
		{"hmac: hex where base64 expected", omCfg, hdr("X-Hub-Signature-256", ghSig), omBody, false},
		{"hmac: missing prefix", omCfg, hdr("X-Hub-Signature-256", strings.TrimPrefix(omSig, "sha256=")), omBody, false},
		{"hmac: wrong key", omCfg, hdr("X-Hub-Signature-256", "sha256="+base64.StdEncoding.EncodeToString(sign("other", omBody))), omBody, false},
		{"hmac: truncated", omCfg, hdr("X-Hub-Signature-256", omSig[:20]), omBody, false},
		{"hmac: missing header", omCfg, nil, omBody, false},
		{"hmac: github hex", ghCfg, hdr("X-Hub-Signature-256", ghSig), omBody, true},
		{"hmac: github upper-case hex", ghCfg, hdr("X-Hub-Signature-256", strings.ToUpper(ghSig)), omBody, true},
		{"hmac: github tampered body", ghCfg, hdr("X-Hub-Signature-256", ghSig), tampered, false},
		{"hmac: github sha1 header value", ghCfg, hdr("X-Hub-Signature-256", "sha1="+hex.EncodeToString(sign(secret, omBody)[:20])), omBody, false},
		{"hmac: plain hex custom header", plainHex, hdr("X-Signature", hex.EncodeToString(sign(secret, omBody))), omBody, true},
		{"hmac: empty body signed", plainHex, hdr("X-Signature", hex.EncodeToString(sign(secret, nil))), nil, true},
		{"hmac: empty body, signature of another", plainHex, hdr("X-Signature", hex.EncodeToString(sign(secret, omBody))), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustNew(t, tt.cfg)
			err := v.Verify(tt.h, tt.body)
			if tt.ok {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrUnauthorized) {
				t.Errorf("error %v does not wrap ErrUnauthorized", err)
			}
			for _, s := range []string{secret, previous, secret[:8]} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains a secret", err)
				}
			}
		})
	}
}

// TestOneByteChange: any single-byte change to a signed body is rejected.
func TestOneByteChange(t *testing.T) {
	for _, enc := range []string{"hex", "base64"} {
		c := Config{Type: "hmac-sha256", Prefix: "sha256=", Encoding: enc, Secret: secret}
		v := mustNew(t, c)
		sum := sign(secret, omBody)
		sig := "sha256=" + hex.EncodeToString(sum)
		if enc == "base64" {
			sig = "sha256=" + base64.StdEncoding.EncodeToString(sum)
		}
		h := hdr("X-Hub-Signature-256", sig)
		if err := v.Verify(h, omBody); err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		for i := range omBody {
			b := append([]byte(nil), omBody...)
			b[i]++
			if err := v.Verify(h, b); !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("%s: body changed at %d: err = %v", enc, i, err)
			}
		}
		if err := v.Verify(h, append(append([]byte(nil), omBody...), ' ')); err == nil {
			t.Fatalf("%s: appended byte accepted", enc)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, `type is empty; set one of`},
		{Config{Secret: secret}, `type is empty`},
		{Config{Type: "HMAC"}, `unknown type "HMAC"`},
		{Config{Type: "none", Secret: secret}, "none: secret does not apply"},
		{Config{Type: "none", Header: "X-A"}, "none: header does not apply"},
		{Config{Type: "shared-secret"}, "shared-secret: secret is empty"},
		{Config{Type: "shared-secret", PreviousSecret: previous}, "secret is empty"},
		{Config{Type: "shared-secret", Secret: secret + "\n"}, "secret starts or ends with whitespace"},
		{Config{Type: "shared-secret", Secret: secret, PreviousSecret: " " + previous}, "previous secret starts or ends with whitespace"},
		{Config{Type: "shared-secret", Secret: "a\x00b"}, "secret contains a control character"},
		{Config{Type: "shared-secret", Secret: secret, Header: "X Bad"}, `header "X Bad" is not a valid header name`},
		{Config{Type: "shared-secret", Secret: secret, Encoding: "hex"}, "encoding does not apply"},
		{Config{Type: "bearer", Secret: secret, Header: "X-Token"}, "bearer: header does not apply"},
		{Config{Type: "bearer", Secret: secret, Username: "u"}, "username does not apply"},
		{Config{Type: "basic", Secret: secret}, "basic: username is empty"},
		{Config{Type: "basic", Username: "a:b", Secret: secret}, "username contains ':'"},
		{Config{Type: "basic", Username: "u"}, "secret is empty"},
		{Config{Type: "basic", Username: "u", Secret: secret, Prefix: "x"}, "prefix does not apply"},
		{Config{Type: "hmac-sha256"}, "hmac-sha256: secret is empty"},
		{Config{Type: "hmac-sha256", Secret: secret, Encoding: "base32"}, `unknown encoding "base32"`},
		{Config{Type: "hmac-sha256", Secret: secret, Username: "u"}, "username does not apply"},
	}
	for _, tt := range tests {
		v, err := New(tt.cfg)
		if err == nil {
			t.Errorf("New(%v) = %v, want error %q", tt.cfg, v, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%v) error %q, want %q", tt.cfg, err, tt.want)
		}
		if errors.Is(err, ErrUnauthorized) {
			t.Errorf("configuration error %q wraps ErrUnauthorized", err)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), previous) {
			t.Errorf("error %q contains a secret", err)
		}
	}
	// Secrets with inner spaces are fine for headers, and any bytes are fine
	// for HMAC keys and basic passwords.
	for _, c := range []Config{
		{Type: "shared-secret", Secret: "two words"},
		{Type: "hmac-sha256", Secret: " key\n"},
		{Type: "basic", Username: "u", Secret: " pass "},
	} {
		if _, err := New(c); err != nil {
			t.Errorf("New(%v): %v", c, err)
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Type: "none"}, "none"},
		{Config{Type: "shared-secret", Secret: secret}, "shared-secret header=X-Hookline-Secret"},
		{Config{Type: "shared-secret", Header: "x-genesys-token", Secret: secret, PreviousSecret: previous}, "shared-secret header=X-Genesys-Token (+previous)"},
		{Config{Type: "bearer", Secret: secret}, "bearer"},
		{Config{Type: "basic", Username: "genesys", Secret: secret}, `basic username="genesys"`},
		{Config{Type: "hmac-sha256", Secret: secret}, "hmac-sha256 header=X-Hub-Signature-256 encoding=hex"},
		{Config{Type: "hmac-sha256", Encoding: "base64", Prefix: "sha256=", Secret: secret, PreviousSecret: previous},
			"hmac-sha256 header=X-Hub-Signature-256 encoding=base64 prefix=sha256= (+previous)"},
		{Config{Type: "bearer"}, "bearer (no secret)"},
		{Config{}, "(no verifier type)"},
	}
	for _, tt := range tests {
		if got := tt.cfg.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// TestNoSecretsPrinted: neither a Config nor a Verifier prints a secret,
// whatever the verb.
func TestNoSecretsPrinted(t *testing.T) {
	for _, c := range []Config{
		{Type: "shared-secret", Secret: secret, PreviousSecret: previous},
		{Type: "bearer", Secret: secret, PreviousSecret: previous},
		{Type: "basic", Username: "genesys", Secret: secret, PreviousSecret: previous},
		{Type: "hmac-sha256", Secret: secret, PreviousSecret: previous, Encoding: "base64", Prefix: "sha256="},
	} {
		v := mustNew(t, c)
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			for _, x := range []any{c, &c, v} {
				out := fmt.Sprintf(verb, x)
				if strings.Contains(out, secret) || strings.Contains(out, previous) {
					t.Errorf("%s of %T prints a secret: %s", verb, x, out)
				}
			}
		}
	}
}

// SignHMAC writes what the verifier of the same Config accepts, and what an
// independent HMAC computes; a Config New refuses is refused too.
func TestSignHMACPassesItsVerifier(t *testing.T) {
	for _, c := range []Config{
		{Type: TypeHMACSHA256, Secret: secret, Prefix: "sha256=", Encoding: EncodingBase64},
		{Type: TypeHMACSHA256, Secret: secret, Header: "X-Signature", Encoding: EncodingHex},
		{Type: TypeHMACSHA256, Secret: secret},
	} {
		name, value, err := SignHMAC(c, omBody)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		want := hex.EncodeToString(sign(secret, omBody))
		if c.Encoding == EncodingBase64 {
			want = base64.StdEncoding.EncodeToString(sign(secret, omBody))
		}
		if name != headerOr(c.Header, DefaultHMACHeader) || value != c.Prefix+want {
			t.Errorf("%v: %s: %s, want %s", c, name, value, c.Prefix+want)
		}
		v, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Verify(hdr(name, value), omBody); err != nil {
			t.Errorf("%v: its verifier refuses the signature: %v", c, err)
		}
	}
	for _, c := range []Config{
		{Type: TypeSharedSecret, Secret: secret},
		{Type: TypeHMACSHA256, Secret: secret, Encoding: "base32"},
		{Type: TypeHMACSHA256},
	} {
		if _, _, err := SignHMAC(c, omBody); err == nil {
			t.Errorf("%v: signed", c)
		}
	}
}

// VerifyHeader refuses what Verify refuses on the headers alone, so the
// receiver can answer 401 before reading a body; for hmac-sha256 it only
// refuses a missing or malformed signature header.
func TestVerifyHeaderRefusesBeforeTheBody(t *testing.T) {
	body := []byte(`{"id":"e1"}`)
	hc := Config{Type: TypeHMACSHA256, Prefix: "sha256=", Encoding: EncodingBase64, Secret: "k"}
	_, good, err := SignHMAC(hc, body)
	if err != nil {
		t.Fatal(err)
	}
	_, other, _ := SignHMAC(hc, []byte(`{"id":"e2"}`))
	basicAuth := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	for _, c := range []struct {
		cfg        Config
		hdr        http.Header
		headerOK   bool // VerifyHeader accepts
		verifiedOK bool // Verify accepts
	}{
		{Config{Type: TypeSharedSecret, Secret: "s"}, http.Header{"X-Hookline-Secret": {"s"}}, true, true},
		{Config{Type: TypeSharedSecret, Secret: "s"}, http.Header{"X-Hookline-Secret": {"x"}}, false, false},
		{Config{Type: TypeSharedSecret, Secret: "s"}, http.Header{}, false, false},
		{Config{Type: TypeBearer, Secret: "s"}, http.Header{"Authorization": {"Bearer s"}}, true, true},
		{Config{Type: TypeBearer, Secret: "s"}, http.Header{"Authorization": {"Bearer x"}}, false, false},
		{Config{Type: TypeBasic, Username: "u", Secret: "s"}, http.Header{"Authorization": {basicAuth("u", "s")}}, true, true},
		{Config{Type: TypeBasic, Username: "u", Secret: "s"}, http.Header{"Authorization": {basicAuth("u", "x")}}, false, false},
		{hc, http.Header{"X-Hub-Signature-256": {good}}, true, true},
		{hc, http.Header{"X-Hub-Signature-256": {other}}, true, false}, // well-formed: only the body tells
		{hc, http.Header{"X-Hub-Signature-256": {"sha256=short"}}, false, false},
		{hc, http.Header{}, false, false},
		{Config{Type: TypeNone}, http.Header{}, true, true},
	} {
		v, err := New(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		hv, ok := v.(HeaderVerifier)
		if !ok {
			t.Fatalf("%s: not a HeaderVerifier", c.cfg)
		}
		if err := hv.VerifyHeader(c.hdr); (err == nil) != c.headerOK || (err != nil && !errors.Is(err, ErrUnauthorized)) {
			t.Errorf("%s %v: VerifyHeader = %v, want ok=%v", c.cfg, c.hdr, err, c.headerOK)
		}
		if err := v.Verify(c.hdr, body); (err == nil) != c.verifiedOK {
			t.Errorf("%s %v: Verify = %v, want ok=%v", c.cfg, c.hdr, err, c.verifiedOK)
		}
	}
}

// Only verifiers whose credentials are all in the headers let the receiver
// skip Verify after VerifyHeader; hmac-sha256 must still check the body.
func TestDecidedByHeaders(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want bool
	}{
		{Config{Type: TypeNone}, true},
		{Config{Type: TypeSharedSecret, Secret: "s"}, true},
		{Config{Type: TypeBearer, Secret: "s"}, true},
		{Config{Type: TypeBasic, Username: "u", Secret: "s"}, true},
		{Config{Type: TypeHMACSHA256, Secret: "s"}, false},
	} {
		v, err := New(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := DecidedByHeaders(v); got != c.want {
			t.Errorf("%s: DecidedByHeaders %v, want %v", c.cfg.Type, got, c.want)
		}
	}
}

// Only a signature of the body may be stored with it: the other verifiers'
// headers carry the secret itself.
func TestSignatureHeader(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Type: TypeNone}, ""},
		{Config{Type: TypeSharedSecret, Secret: "s"}, ""},
		{Config{Type: TypeBearer, Secret: "s"}, ""},
		{Config{Type: TypeBasic, Username: "u", Secret: "s"}, ""},
		{Config{Type: TypeHMACSHA256, Secret: "s"}, "X-Hub-Signature-256"},
		{Config{Type: TypeHMACSHA256, Secret: "s", Header: "stripe-signature"}, "Stripe-Signature"},
	} {
		v, err := New(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := SignatureHeader(v); got != c.want {
			t.Errorf("%s %s: SignatureHeader %q, want %q", c.cfg.Type, c.cfg.Header, got, c.want)
		}
	}
}
