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
