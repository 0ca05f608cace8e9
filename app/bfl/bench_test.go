package bfl

import (
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkValidateTrainingBody validates a finetune body carrying a 16 MB
// ZIP and reports its cost as a ratio to merely decoding the same JSON (ns/op counts both), the
// least any validator must do, measured in the same run. The ratio shows what
// base64 and signature checking add on the largest body the product sends.
func BenchmarkValidateTrainingBody(b *testing.B) {
	payload := make([]byte, 16<<20)
	if _, err := rand.Read(payload); err != nil {
		b.Fatalf("random payload: %v", err)
	}
	copy(payload, "PK\x03\x04")
	e := mustLookup(b, "finetune")
	fields := defaultBody(b, e)
	fields["file_data"] = b64(payload)
	body := marshal(b, fields)

	// Both run in every iteration, alternating, so machine noise hits them alike.
	var decode, validate time.Duration
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		start := time.Now()
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			b.Fatalf("decode: %v", err)
		}
		mid := time.Now()
		if issues := e.Validate(body); len(issues) != 0 {
			b.Fatalf("valid body gave %v", issues)
		}
		decode += mid.Sub(start)
		validate += time.Since(mid)
	}
	b.ReportMetric(float64(validate)/float64(decode), "x-json-decode")
}
