package sim

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
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
	s := New(Config{Credits: new(1e12), MaxActive: 1 << 30, TrainDuration: Duration(time.Nanosecond)})
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

// Numbers and booleans sent as strings, which validation accepts as lax
// pydantic does, are read as the values they spell: they are charged,
// reported and drawn as such.
func TestNumbersSentAsStrings(t *testing.T) {
	e := newTransportEnv(t, Config{})
	ft := e.readyFinetune(map[string]any{"iterations": "1000", "lora_rank": "16", "finetune_type": "lora",
		"learning_rate": " 0.0002 ", "captioning": "yes"})
	if c := e.credits(); c != 500 {
		t.Fatalf("credits after a 1000-iteration finetune: %v, want 500", c)
	}
	var det bfl.FinetuneDetails
	e.get("/v1/finetune_details?finetune_id="+ft).decode(t, &det)
	want := map[string]any{"iterations": 1000.0, "lora_rank": 16.0, "learning_rate": 0.0002, "captioning": true}
	for k, v := range want {
		if det.Details[k] != v {
			t.Errorf("details[%s] = %v, want %v", k, det.Details[k], v)
		}
	}

	gen := e.submit("flux-pro-finetuned", map[string]any{
		"finetune_id": ft, "prompt": "TOK", "width": "512", "height": "768", "seed": "42"})
	res := e.result(gen.PollingURL)
	var ir bfl.ImageResult
	if err := json.Unmarshal(res.Result, &ir); err != nil || ir.Seed == nil || *ir.Seed != 42 {
		t.Fatalf("seed \"42\": result %s (%v)", res.Result, err)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(e.fetchSample(res).body))
	if err != nil || cfg.Width != 512 || cfg.Height != 768 {
		t.Fatalf("width \"512\" height \"768\": sample %dx%d (%v)", cfg.Width, cfg.Height, err)
	}
}

// A seed keeps every digit of an int64, and one beyond int64's range is
// clamped to it rather than wrapping around.
func TestSeedPrecisionAndRange(t *testing.T) {
	e := newTransportEnv(t, Config{})
	ft := e.readyFinetune(nil)
	for seed, want := range map[string]int64{
		`9007199254740993`:     9007199254740993,
		`"9007199254740993"`:   9007199254740993,
		`-9223372036854775808`: math.MinInt64,
		`18446744073709551615`: math.MaxInt64,
		`1e30`:                 math.MaxInt64,
		`"-1e30"`:              math.MinInt64,
	} {
		body := fmt.Sprintf(`{"finetune_id":%q,"prompt":"TOK","seed":%s}`, ft, seed)
		var a bfl.AsyncResponse
		if r := e.post("/v1/flux-pro-finetuned", []byte(body)); r.status != http.StatusOK {
			t.Fatalf("seed %s: %d %s", seed, r.status, r.body)
		} else {
			r.decode(t, &a)
		}
		var ir bfl.ImageResult
		if res := e.result(a.PollingURL); json.Unmarshal(res.Result, &ir) != nil || ir.Seed == nil || *ir.Seed != want {
			t.Errorf("seed %s: result %s, want seed %d", seed, res.Result, want)
		}
	}
}
