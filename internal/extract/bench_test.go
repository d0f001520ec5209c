package extract

import "testing"

// BenchmarkExtract measures one EventBridge customer.start body with the
// default Genesys rules (parse, detect, hash).
func BenchmarkExtract(b *testing.B) {
	body := Samples()["customer.start.eventbridge"]
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Extract(body, genesys); err != nil {
			b.Fatal(err)
		}
	}
}
