package proxy

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // samples may be JPEG
	"image/png"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// datasetZIP is a training set of n small PNGs with captions.
func datasetZIP(t *testing.T, n int) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, 64, 48))
		for p := range img.Pix {
			img.Pix[p] = byte(p*(i+3)) | 0x0f
		}
		img.Set(1, 1, color.RGBA{255, 0, 0, 255})
		w, err := zw.Create(fmt.Sprintf("img%d.png", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(w, img); err != nil {
			t.Fatal(err)
		}
		cw, _ := zw.Create(fmt.Sprintf("img%d.txt", i))
		_, _ = fmt.Fprintf(cw, "a photo of TOK, number %d", i)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

func postJSON(t *testing.T, url string, v any) (int, map[string]any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, "POST", url, bytes.NewReader(b), http.Header{"Content-Type": {"application/json"}})
	var out map[string]any
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatalf("POST %s: %d, body %q is not JSON", url, resp.StatusCode, body)
	}
	return resp.StatusCode, out
}

// pollReady polls a polling_url through the proxy until the task is Ready.
func pollReady(t *testing.T, base, pollingURL string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, body := do(t, "GET", base+"/api/poll?url="+url.QueryEscape(pollingURL), nil, nil)
		var r map[string]any
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &r) != nil {
			t.Fatalf("poll: %d %s", resp.StatusCode, body)
		}
		switch r["status"] {
		case "Ready":
			return r
		case "Pending":
			time.Sleep(50 * time.Millisecond)
		default:
			t.Fatalf("task ended %v: %s", r["status"], body)
		}
	}
	t.Fatalf("%s not Ready within 15s", pollingURL)
	return nil
}

// runTask submits to an endpoint through the proxy, polls the task to Ready
// and returns the named string from its result.
func runTask(t *testing.T, base, endpoint, resultKey string, body map[string]any) string {
	t.Helper()
	status, sub := postJSON(t, base+"/api/v1/"+endpoint, body)
	pollingURL, _ := sub["polling_url"].(string)
	if status != 200 || pollingURL == "" {
		t.Fatalf("%s submit: %d %v", endpoint, status, sub)
	}
	res := pollReady(t, base, pollingURL)
	result, _ := res["result"].(map[string]any)
	v, _ := result[resultKey].(string)
	if v == "" {
		t.Fatalf("%s: Ready without result.%s: %v", endpoint, resultKey, res)
	}
	return v
}

func credits(t *testing.T, base string) float64 {
	t.Helper()
	resp, body := do(t, "GET", base+"/api/v1/credits", nil, nil)
	var c struct{ Credits float64 }
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &c) != nil {
		t.Fatalf("credits: %d %s", resp.StatusCode, body)
	}
	return c.Credits
}

// TestSimulatedFinetuneToImage is the no-key walk through the product:
// train on three images, generate a 16:9 ultra image with the finetune and
// fetch it through /api/image.
func TestSimulatedFinetuneToImage(t *testing.T) {
	p := start(t, map[string]string{"SIM_TRAIN_SECONDS": "0.3", "SIM_GENERATE_SECONDS": "0.1"})
	if !strings.Contains(p.stdout.String(), "SIMULATED") {
		t.Errorf("banner lacks SIMULATED: %s", p.stdout.String())
	}
	if resp, body := do(t, "GET", p.base+"/healthz", nil, nil); !strings.Contains(body, `"mode":"simulated"`) {
		t.Errorf("/healthz: %d %s", resp.StatusCode, body)
	}
	before := credits(t, p.base)

	ftID := runTask(t, p.base, "finetune", "finetune_id", map[string]any{
		"file_data": datasetZIP(t, 3), "finetune_comment": "proxy flow", "mode": "character", "trigger_word": "TOK", "iterations": 100,
	})
	sample := runTask(t, p.base, "flux-pro-1.1-ultra-finetuned", "sample", map[string]any{
		"finetune_id": ftID, "prompt": "TOK on a beach at dawn", "aspect_ratio": "16:9", "seed": 7,
	})

	resp, body := do(t, "GET", p.base+"/api/image?url="+url.QueryEscape(sample), nil, nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "image/") {
		t.Fatalf("image: %d %s %.200q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	img, format, err := image.DecodeConfig(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the sample is not an image: %v", err)
	}
	if math.Abs(float64(img.Width)*9/16-float64(img.Height)) > 1 {
		t.Errorf("sample is %dx%d %s, not 16:9", img.Width, img.Height, format)
	}
	if after := credits(t, p.base); after >= before {
		t.Errorf("credits %v -> %v: training and generating should cost", before, after)
	}
}

func TestImageChecks(t *testing.T) {
	up := newFakeBFL(t)
	up.mux.HandleFunc("GET /delivery/page.html", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<script>alert(1)</script>"))
	})
	up.mux.HandleFunc("GET /delivery/x.svg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		_, _ = w.Write([]byte("<svg onload=alert(1)/>"))
	})
	big := bytes.Repeat([]byte{0xff}, 1<<20+10)
	up.mux.HandleFunc("GET /delivery/big.jpg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		_, _ = w.Write(big)
	})
	up.mux.HandleFunc("GET /delivery/bigchunked.jpg", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		for i := 0; i < len(big); i += 4096 {
			_, _ = w.Write(big[i:min(i+4096, len(big))])
			w.(http.Flusher).Flush()
		}
	})
	p := startLive(t, up, map[string]string{"MAX_IMAGE_MB": "1"})
	img := func(path string) string { return p.base + "/api/image?url=" + url.QueryEscape(up.URL+path) }
	for path, want := range map[string]int{
		"/delivery/page.html": http.StatusBadGateway,
		"/delivery/x.svg":     http.StatusBadGateway,
		"/delivery/big.jpg":   http.StatusBadGateway,
		"/delivery/gone.png":  http.StatusNotFound,
	} {
		resp, body := do(t, "GET", img(path), nil, nil)
		if resp.StatusCode != want || !strings.Contains(body, `"detail"`) || strings.Contains(body, "alert") {
			t.Errorf("%s: %d %s, want %d with a detail", path, resp.StatusCode, body, want)
		}
	}
	// Over the cap with no Content-Length: the stream is cut, never completed.
	resp, err := client().Get(img("/delivery/bigchunked.jpg"))
	if err == nil {
		var n int64
		var buf bytes.Buffer
		n, err = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatalf("an over-cap streamed image arrived whole (%d bytes)", n)
		}
	}
	resp2, body := do(t, "GET", img("/delivery/a.png"), nil, nil)
	if resp2.StatusCode != 200 || body != string(tinyPNG) || resp2.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("a real image: %d %v", resp2.StatusCode, resp2.Header)
	}
}
