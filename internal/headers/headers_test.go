package headers

import (
	"math/rand/v2"
	"testing"
	"time"
)

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

// sameParse checks ParseTime(s) against time.Parse, the reference: the
// same instant in the same location, or both an error.
func sameParse(t *testing.T, s string) {
	t.Helper()
	got, gerr := ParseTime(s)
	want, werr := time.Parse(time.RFC3339Nano, s)
	if (gerr != nil) != (werr != nil) {
		t.Fatalf("ParseTime(%q) error %v, time.Parse error %v", s, gerr, werr)
	}
	if gerr != nil {
		return
	}
	gn, goff := got.Zone()
	wn, woff := want.Zone()
	if !got.Equal(want) || gn != wn || goff != woff {
		t.Fatalf("ParseTime(%q) = %v, time.Parse = %v", s, got, want)
	}
	if _, fast := parseUTCMillis(s); fast && got != want {
		t.Fatalf("ParseTime(%q) = %#v, time.Parse = %#v: not the same value", s, got, want)
	}
}

// TestParseTimeMatchesTimeParse: FormatTime's form, read directly, gives
// what time.Parse gives, over random instants (leap days, year ends, the
// years 0-9999) and edge and malformed strings.
func TestParseTimeMatchesTimeParse(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	lo := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	hi := time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli()
	for range 200_000 {
		ts := time.UnixMilli(lo + r.Int64N(hi-lo+1))
		s := FormatTime(ts)
		if _, ok := parseUTCMillis(s); !ok {
			t.Fatalf("parseUTCMillis does not read FormatTime's %q", s)
		}
		sameParse(t, s)
		if got, _ := ParseTime(s); !got.Equal(ts) {
			t.Fatalf("ParseTime(FormatTime(%v)) = %v", ts, got)
		}
	}
	for _, s := range []string{
		"2024-02-29T23:59:59.999Z", "2023-02-29T00:00:00.000Z", "2100-02-29T00:00:00.000Z", "2000-02-29T00:00:00.000Z",
		"1970-01-01T00:00:00.000Z", "1969-12-31T23:59:59.999Z", "0000-01-01T00:00:00.000Z", "0000-03-01T00:00:00.000Z",
		"2024-04-31T00:00:00.000Z", "2024-13-01T00:00:00.000Z", "2024-00-01T00:00:00.000Z", "2024-01-00T00:00:00.000Z",
		"2024-01-01T24:00:00.000Z", "2024-01-01T23:60:00.000Z", "2024-01-01T23:59:60.000Z", "2024-01-01T23:59:59.99Z",
		"2024-01-01T23:59:59.999+00:00", "2024-01-01T23:59:59.999+02:00", "2024-01-01T23:59:59Z", "2024-01-01t23:59:59.999Z",
		"2024-01-01T23:59:59.999z", "2024-01-01T2a:59:59.999Z", "+024-01-01T23:59:59.999Z", "2024-1-01T23:59:59.9999Z", "",
	} {
		sameParse(t, s)
	}
}

// FuzzParseTime: whatever the header holds, ParseTime agrees with
// time.Parse.
func FuzzParseTime(f *testing.F) {
	f.Add("2024-02-29T23:59:59.999Z")
	f.Add("2024-01-01T23:59:59.999+02:00")
	f.Add("0000-02-01T00:00:00.000Z")
	f.Fuzz(func(t *testing.T, s string) { sameParse(t, s) })
}

// FormatTime and AppendTime write what time.Format writes, for any instant
// and location, sub-millisecond parts and years outside 0-9999 included.
func TestFormatTimeMatchesTimeFormat(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	lo := time.Date(-200, 1, 1, 0, 0, 0, 0, time.UTC).Unix() * 1e6
	hi := time.Date(10200, 1, 1, 0, 0, 0, 0, time.UTC).Unix() * 1e6
	zones := []*time.Location{time.UTC, time.FixedZone("x", -9*3600-30*60), time.FixedZone("y", 14*3600)}
	check := func(ts time.Time) {
		t.Helper()
		want := ts.UTC().Format(TimeLayout)
		if got := FormatTime(ts); got != want {
			t.Fatalf("FormatTime(%v) = %q, want %q", ts, got, want)
		}
		if y := ts.UTC().Year(); y >= 0 && y <= 9999 && len(want) != TimeLen {
			t.Fatalf("len(FormatTime(%v)) = %d, TimeLen %d", ts, len(want), TimeLen)
		}
		if got := string(AppendTime([]byte("x"), ts)); got != "x"+want {
			t.Fatalf("AppendTime(x, %v) = %q, want %q", ts, got, "x"+want)
		}
	}
	for range 200_000 {
		// Microseconds from years -200 to 10200, plus random
		// nanoseconds (UnixNano would overflow there).
		us := lo + r.Int64N(hi-lo)
		sec, frac := us/1e6, us%1e6
		if frac < 0 {
			sec, frac = sec-1, frac+1e6
		}
		check(time.Unix(sec, frac*1e3+r.Int64N(1000)).In(zones[r.IntN(len(zones))]))
	}
	for _, ts := range []time.Time{
		{}, time.Unix(0, 0), time.Unix(-1, 999_999_999),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 23, 59, 59, 999_500_000, time.FixedZone("z", 3600)),
	} {
		check(ts)
	}
}
