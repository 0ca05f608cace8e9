package sim

import (
	"bytes"
	"encoding/json"
	"image"
	"image/jpeg"
	"image/png"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
)

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestFullFlow is issue 2's scenario, once over loopback HTTP and once
// through the in-process Transport: train on 3 images, poll to Ready,
// generate 16:9 with ultra, poll to Ready, fetch a real 16:9 image.
func TestFullFlow(t *testing.T) {
	cfg := Config{TrainDuration: Duration(60 * time.Second), GenerateDuration: Duration(3 * time.Second)}
	for name, e := range map[string]*testEnv{"http": newHTTPEnv(t, cfg), "transport": newTransportEnv(t, cfg)} {
		t.Run(name, func(t *testing.T) {
			e.t = t
			ft := e.submit("finetune", map[string]any{
				"file_data": datasetZIP(t, 3, true), "finetune_comment": "my cat", "mode": "character"})
			if !uuidPattern.MatchString(ft.ID) {
				t.Fatalf("finetune id %q is not a UUID", ft.ID)
			}
			if want := e.sim.cfg.APIBase + "/v1/get_result?id=" + ft.ID; ft.PollingURL != want {
				t.Fatalf("polling_url = %q, want %q", ft.PollingURL, want)
			}
			var last float64 = -1
			for range 4 {
				res := e.result(ft.PollingURL)
				if res.Status != bfl.StatusPending || res.Progress == nil || *res.Progress <= last || *res.Progress >= 1 {
					t.Fatalf("training poll: status %s progress %v after %v", res.Status, res.Progress, last)
				}
				last = *res.Progress
				e.clock.Advance(14 * time.Second)
			}
			e.clock.Advance(5 * time.Second)
			res := e.result(ft.PollingURL)
			var fr bfl.FinetuneResult
			if err := json.Unmarshal(res.Result, &fr); err != nil || res.Status != bfl.StatusReady || fr.FinetuneID != ft.ID {
				t.Fatalf("trained: %s %s (%v)", res.Status, res.Result, err)
			}

			gen := e.submit("flux-pro-1.1-ultra-finetuned", map[string]any{
				"finetune_id": ft.ID, "prompt": "TOK on a sofa", "aspect_ratio": "16:9", "output_format": "png"})
			if gen.Cost == nil || *gen.Cost != 7 || gen.OutputMP == nil || *gen.OutputMP < 0.9 || *gen.OutputMP > 1.1 {
				t.Fatalf("submit answer cost %v output_mp %v", gen.Cost, gen.OutputMP)
			}
			if res := e.result(gen.PollingURL); res.Status != bfl.StatusPending {
				t.Fatalf("generation right after submit: %s", res.Status)
			}
			e.clock.Advance(3 * time.Second)
			res = e.result(gen.PollingURL)
			var ir bfl.ImageResult
			if err := json.Unmarshal(res.Result, &ir); err != nil || res.Status != bfl.StatusReady {
				t.Fatalf("generation: %s %s", res.Status, res.Result)
			}
			if !strings.HasPrefix(ir.Sample, e.sim.cfg.DeliveryBase+"/delivery/") || ir.Seed == nil ||
				ir.Prompt != "TOK on a sofa" || ir.Duration == nil || *ir.Duration != 3 {
				t.Fatalf("image result %+v", ir)
			}
			img := e.fetchSample(res)
			if img.status != http.StatusOK || img.header.Get("Content-Type") != "image/png" {
				t.Fatalf("sample: %d %s", img.status, img.header.Get("Content-Type"))
			}
			if img.header.Get("Access-Control-Allow-Origin") != "" {
				t.Fatal("delivery sent a CORS header")
			}
			pic, err := png.Decode(bytes.NewReader(img.body))
			if err != nil {
				t.Fatal(err)
			}
			w, h := pic.Bounds().Dx(), pic.Bounds().Dy()
			if d := float64(w)*9/16 - float64(h); d > 1 || d < -1 {
				t.Fatalf("sample is %dx%d, not 16:9", w, h)
			}
		})
	}
}

// The legacy pro endpoint renders exactly the width and height asked for,
// as JPEG by default.
func TestProEndpointExactSize(t *testing.T) {
	e := newHTTPEnv(t, Config{})
	ft := e.readyFinetune(nil)
	gen := e.submit("flux-pro-finetuned", map[string]any{
		"finetune_id": ft, "prompt": "TOK", "width": 512, "height": 800, "seed": 7})
	img := e.fetchSample(e.result(gen.PollingURL))
	if img.header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("content type %q", img.header.Get("Content-Type"))
	}
	pic, err := jpeg.Decode(bytes.NewReader(img.body))
	if err != nil {
		t.Fatal(err)
	}
	if b := pic.Bounds(); b.Dx() != 512 || b.Dy() != 800 {
		t.Fatalf("got %dx%d, want 512x800", b.Dx(), b.Dy())
	}
}

// Fill renders at the size of the image it was given; webp is answered,
// honestly labelled, as PNG.
func TestFillSizeFromInputAndWebpAsPNG(t *testing.T) {
	e := newTransportEnv(t, Config{})
	ft := e.readyFinetune(nil)
	gen := e.submit("flux-pro-1.0-fill-finetuned", map[string]any{
		"finetune_id": ft, "prompt": "TOK", "image": pngB64(t, 320, 200), "output_format": "webp"})
	if gen.InputMP == nil || *gen.InputMP != 0.06 {
		t.Fatalf("input_mp = %v, want 0.06", gen.InputMP)
	}
	res := e.result(gen.PollingURL)
	var ir bfl.ImageResult
	if err := json.Unmarshal(res.Result, &ir); err != nil || !strings.HasSuffix(ir.Sample, ".png") {
		t.Fatalf("sample %q (%v)", ir.Sample, err)
	}
	img := e.fetchSample(res)
	cfg, format, err := image.DecodeConfig(bytes.NewReader(img.body))
	if err != nil || format != "png" || img.header.Get("Content-Type") != "image/png" || cfg.Width != 320 || cfg.Height != 200 {
		t.Fatalf("sample %s %dx%d %q (%v)", format, cfg.Width, cfg.Height, img.header.Get("Content-Type"), err)
	}
}

// Same prompt and seed give identical bytes through the whole API; another
// seed gives another picture. A request without a seed reports the one used.
func TestSamplesAreDeterministic(t *testing.T) {
	e := newHTTPEnv(t, Config{})
	ft := e.readyFinetune(nil)
	fetch := func(body map[string]any) ([]byte, int64) {
		body["finetune_id"], body["width"], body["height"] = ft, 512, 384
		res := e.result(e.submit("flux-pro-finetuned", body).PollingURL)
		var ir bfl.ImageResult
		if err := json.Unmarshal(res.Result, &ir); err != nil || ir.Seed == nil {
			t.Fatalf("result %s", res.Result)
		}
		img := e.fetchSample(res)
		if img.status != http.StatusOK {
			t.Fatalf("sample: %d", img.status)
		}
		return img.body, *ir.Seed
	}
	a, seedA := fetch(map[string]any{"prompt": "a red fox", "seed": 42})
	b, _ := fetch(map[string]any{"prompt": "a red fox", "seed": 42})
	c, _ := fetch(map[string]any{"prompt": "a red fox", "seed": 43})
	if seedA != 42 || !bytes.Equal(a, b) {
		t.Fatal("same prompt and seed gave different images")
	}
	if bytes.Equal(a, c) {
		t.Fatal("a different seed gave the same image")
	}
	_, seed1 := fetch(map[string]any{"prompt": "a red fox"})
	_, seed2 := fetch(map[string]any{"prompt": "a red fox"})
	if seed1 == seed2 {
		t.Fatalf("two unseeded requests both used seed %d", seed1)
	}
}

func TestGetResultUnknownID(t *testing.T) {
	e := newHTTPEnv(t, Config{})
	r := e.get("/v1/get_result?id=nope")
	var res map[string]any
	r.decode(t, &res)
	if r.status != http.StatusOK || res["status"] != string(bfl.StatusTaskNotFound) || res["id"] != "nope" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if r := e.get("/v1/get_result"); r.status != http.StatusUnprocessableEntity || r.apiError(t).Field() != "id" {
		t.Fatalf("missing id: %d %s", r.status, r.body)
	}
}

// Every generator in the catalog, legacy ones too, accepts a body of just its
// required fields and delivers an image of the size its fields imply.
func TestEveryGeneratorEndpoint(t *testing.T) {
	e := newTransportEnv(t, Config{})
	ft := e.readyFinetune(nil)
	for _, ep := range bfl.Generators(true) {
		t.Run(ep.Name, func(t *testing.T) {
			body := map[string]any{}
			for _, f := range ep.Fields {
				switch {
				case !f.Required:
				case f.Name == "finetune_id":
					body[f.Name] = ft
				case f.Format == bfl.FormatBase64Image:
					body[f.Name] = pngB64(t, 96, 64)
				default:
					body[f.Name] = "TOK"
				}
			}
			wantW, wantH := 96, 64
			if _, ok := ep.Field("width"); ok {
				wantW, wantH = 1024, 768 // the catalog's defaults
			} else if _, ok := ep.Field("aspect_ratio"); ok {
				wantW, wantH = sizeForRatio(16, 9)
			}
			res := e.result(e.submit(ep.Name, body).PollingURL)
			img := e.fetchSample(res)
			cfg, _, err := image.DecodeConfig(bytes.NewReader(img.body))
			if err != nil || cfg.Width != wantW || cfg.Height != wantH {
				t.Fatalf("%s: %dx%d (%v), want %dx%d", res.Status, cfg.Width, cfg.Height, err, wantW, wantH)
			}
		})
	}
}
