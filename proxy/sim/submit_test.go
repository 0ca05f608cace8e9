package sim

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// bigFinetuneBody is a training body the size issue 2 talks about: a 20 MB
// ZIP of 20 images, 27 MB once in base64 JSON. Each entry is a small PNG
// followed by 1 MB of noise, which image headers never reach.
func bigFinetuneBody(tb testing.TB) []byte {
	var z bytes.Buffer
	zw := zip.NewWriter(&z)
	rng := rand.New(rand.NewPCG(1, 2))
	img := pngBytes(tb, 16, 16)
	noise := make([]byte, 1<<20)
	for i := range 20 {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("i%02d.png", i), Method: zip.Store})
		if err != nil {
			tb.Fatal(err)
		}
		for j := range noise {
			noise[j] = byte(rng.Uint32())
		}
		if _, err := w.Write(append(img[:len(img):len(img)], noise...)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	body, err := json.Marshal(map[string]any{
		"file_data": base64.StdEncoding.EncodeToString(z.Bytes()), "finetune_comment": "bench", "mode": "style"})
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

// BenchmarkFinetuneSubmit measures the simulator's whole handling of a
// 27 MB training submit against the catalog's validation of the same body
// in the same run (which it must do anyway): the ratio is the simulator's
// own overhead, decoding the ZIP and checking every image included.
func BenchmarkFinetuneSubmit(b *testing.B) {
	body := bigFinetuneBody(b)
	s := New(Config{Credits: 1e12, MaxActive: 1 << 30, TrainDuration: Duration(time.Nanosecond)})
	defer s.Close()
	ep := s.endpoints["finetune"]
	var submitTime, validateTime time.Duration
	for b.Loop() {
		start := time.Now()
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/finetune", bytes.NewReader(body)))
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
		submitTime += time.Since(start)
		start = time.Now()
		if issues := ep.Validate(body); len(issues) != 0 {
			b.Fatal(issues)
		}
		validateTime += time.Since(start)
	}
	b.ReportMetric(float64(len(body))/(1<<20), "MB_body")
	b.ReportMetric(submitTime.Seconds()*1000/float64(b.N), "ms/submit")
	b.ReportMetric(float64(submitTime)/float64(validateTime), "x_validate_only")
}

// A sender that escapes "/" in JSON strings (some encoders do) still has its
// ZIP read correctly: the base64 is decoded from the unescaped string.
func TestEscapedBase64(t *testing.T) {
	e := newTransportEnv(t, Config{})
	b64 := datasetZIP(t, 2, true)
	if !strings.Contains(b64, "/") {
		t.Fatal("the test ZIP's base64 holds no slash to escape")
	}
	body := `{"file_data":"` + strings.ReplaceAll(b64, "/", `\/`) + `","finetune_comment":"x","mode":"style"}`
	if r := e.post("/v1/finetune", []byte(body)); r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
}
