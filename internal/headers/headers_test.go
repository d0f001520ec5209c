package headers

import "testing"

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain ü 日本 ✓":                  "plain ü 日本 ✓",
		"two\nlines\tand tab":           "two\nlines\tand tab",
		"\x1b[2Jclear\rover\x00\x7f":    "?[2Jclear?over??",
		"bidi \u202eevil\u200b zw":      "bidi ?evil? zw",
		"c1 \u009b31m, raw \x9b\xff ok": "c1 ?31m, raw ?? ok",
		"":                              "",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHTTPSyntax(t *testing.T) {
	for s, want := range map[string]bool{"X-Hookline-Secret": true, "a!#$%&'*+-.^_`|~9": true, "": false, "Bad Name": false, "x:y": false, "é": false} {
		if got := ValidHTTPName(s); got != want {
			t.Errorf("ValidHTTPName(%q) = %v", s, got)
		}
	}
	for s, want := range map[string]bool{"Bearer a\tb": false, "ü ok": false, "a\nb": true, "a\rb": true, "\x00": true, "del\x7f": true} {
		if got := HasHTTPControl(s); got != want {
			t.Errorf("HasHTTPControl(%q) = %v", s, got)
		}
	}
}
