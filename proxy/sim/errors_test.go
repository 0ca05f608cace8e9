package sim

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
)

// Every kind of bad input answers 422 naming the field, and costs nothing.
func TestInvalidInput422NamesField(t *testing.T) {
	e := newHTTPEnv(t, Config{})
	ready := e.readyFinetune(nil)
	zip := func(names []string, files map[string][]byte) string {
		return base64.StdEncoding.EncodeToString(zipOf(t, names, files))
	}
	png, jpg := pngBytes(t, 32, 32), jpegBytes(t, 32, 32)
	// JPEG lets a later marker give the height, so a header may say 0 rows,
	// and a 32x0 picture made the renderer panic.
	noRows := jpegBytes(t, 32, 32)
	sof := bytes.Index(noRows, []byte{0xFF, 0xC0})
	noRows[sof+5], noRows[sof+6] = 0, 0
	finetune := func(over map[string]any) map[string]any {
		b := map[string]any{"file_data": datasetZIP(t, 2, false), "finetune_comment": "x", "mode": "style"}
		for k, v := range over {
			b[k] = v
		}
		return b
	}
	cases := []struct {
		name, endpoint string
		body           any
		field, msg     string
	}{
		{"no body", "finetune", []byte(""), "", "required"},
		{"not JSON", "finetune", []byte("{"), "", "JSON"},
		{"missing file_data", "finetune", map[string]any{"finetune_comment": "x", "mode": "style"}, "file_data", "required"},
		{"bad mode", "finetune", finetune(map[string]any{"mode": "portrait"}), "mode", "general"},
		{"iterations too low", "finetune", finetune(map[string]any{"iterations": 50}), "iterations", "100"},
		{"iterations not integer", "finetune", finetune(map[string]any{"iterations": 300.5}), "iterations", "integer"},
		{"lora_rank enum", "finetune", finetune(map[string]any{"lora_rank": 8}), "lora_rank", "16"},
		{"learning_rate range", "finetune", finetune(map[string]any{"learning_rate": 0.5}), "learning_rate", "0.005"},
		{"file_data not base64", "finetune", finetune(map[string]any{"file_data": "%%%"}), "file_data", ""},
		{"file_data not a ZIP", "finetune", finetune(map[string]any{"file_data": base64.StdEncoding.EncodeToString(png)}), "file_data", ""},
		{"ZIP without images", "finetune", finetune(map[string]any{"file_data": zip([]string{"a.txt"}, map[string][]byte{"a.txt": []byte("hi")})}), "file_data", "no images"},
		{"ZIP with 21 images", "finetune", finetune(map[string]any{"file_data": datasetZIP(t, 21, false)}), "file_data", "limit is 20"},
		{"ZIP with a fake JPG", "finetune", finetune(map[string]any{"file_data": zip([]string{"a.jpg", "b.jpg"},
			map[string][]byte{"a.jpg": jpg, "b.jpg": []byte("not an image at all")})}), "file_data", "b.jpg is not"},
		{"ZIP with an orphan caption", "finetune", finetune(map[string]any{"file_data": zip([]string{"a.png", "b.txt"},
			map[string][]byte{"a.png": png, "b.txt": []byte("b")})}), "file_data", "b.txt has no image"},
		{"ultra bad aspect ratio", "flux-pro-1.1-ultra-finetuned", map[string]any{"finetune_id": ready, "aspect_ratio": "32:9"}, "aspect_ratio", "21:9"},
		{"ultra missing finetune_id", "flux-pro-1.1-ultra-finetuned", map[string]any{"prompt": "x"}, "finetune_id", "required"},
		{"ultra bad output_format", "flux-pro-1.1-ultra-finetuned", map[string]any{"finetune_id": ready, "output_format": "gif"}, "output_format", "jpeg"},
		{"pro width not multiple of 32", "flux-pro-finetuned", map[string]any{"finetune_id": ready, "width": 1000}, "width", "32"},
		{"pro steps too high", "flux-pro-finetuned", map[string]any{"finetune_id": ready, "steps": 51}, "steps", "50"},
		{"fill without image", "flux-pro-1.0-fill-finetuned", map[string]any{"finetune_id": ready}, "image", "required"},
		{"fill image unreadable", "flux-pro-1.0-fill-finetuned", map[string]any{"finetune_id": ready,
			"image": base64.StdEncoding.EncodeToString(append([]byte("\x89PNG\r\n\x1a\n"), "garbage"...))}, "image", "image"},
		{"fill image without pixels", "flux-pro-1.0-fill-finetuned", map[string]any{"finetune_id": ready,
			"image": base64.StdEncoding.EncodeToString(noRows)}, "image", "no pixels"},
		{"canny threshold", "flux-pro-1.0-canny-finetuned", map[string]any{"finetune_id": ready, "prompt": "x",
			"control_image": pngB64(t, 8, 8), "canny_low_threshold": 600}, "canny_low_threshold", "500"},
		{"delete without id", "delete_finetune", map[string]any{}, "finetune_id", "required"},
	}
	before := e.credits()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.post("/v1/"+c.endpoint, c.body)
			if r.status != http.StatusUnprocessableEntity {
				t.Fatalf("status %d %s", r.status, r.body)
			}
			apiErr := r.apiError(t)
			if len(apiErr.Issues) == 0 || apiErr.Field() != c.field || !strings.Contains(apiErr.Issues[0].Msg, c.msg) {
				t.Fatalf("field %q issues %+v, want field %q with %q", apiErr.Field(), apiErr.Issues, c.field, c.msg)
			}
		})
	}
	if after := e.credits(); after != before {
		t.Fatalf("invalid requests cost credits: %v -> %v", before, after)
	}
}

func TestKeyRequired(t *testing.T) {
	e := newHTTPEnv(t, Config{Key: "k-123"})
	ft := e.readyFinetune(nil)
	res := e.result(e.submit("flux-pro-1.1-ultra-finetuned", map[string]any{"finetune_id": ft, "prompt": "x"}).PollingURL)
	for _, key := range []string{"", "wrong", "k-1234"} {
		e.key = key
		r := e.get("/v1/credits")
		if r.status != http.StatusForbidden || r.apiError(t).Detail != "Not authenticated - Invalid Authentication" {
			t.Fatalf("key %q: %d %s", key, r.status, r.body)
		}
	}
	// The delivery host takes no key: its unguessable file name is the credential.
	if img := e.fetchSample(res); img.status != http.StatusOK {
		t.Fatalf("sample without key: %d", img.status)
	}
	e.key = "k-123"
	if r := e.get("/v1/credits"); r.status != http.StatusOK {
		t.Fatalf("right key: %d %s", r.status, r.body)
	}
}

func TestUnknownPathAndWrongMethod(t *testing.T) {
	e := newHTTPEnv(t, Config{Key: "k"})
	for _, p := range []string{"/v1/flux-dev", "/v2/credits", "/", "/v1/"} {
		r := e.get(p)
		if r.status != http.StatusNotFound || r.apiError(t).Detail != "Not Found" {
			t.Fatalf("GET %s: %d %s", p, r.status, r.body)
		}
	}
	r := e.post("/v1/credits", map[string]any{})
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != http.MethodGet {
		t.Fatalf("POST credits: %d allow %q", r.status, r.header.Get("Allow"))
	}
	if r := e.get("/v1/finetune"); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET finetune: %d", r.status)
	}
	if r := e.post("/delivery/x.png", nil); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("POST delivery: %d", r.status)
	}
}

// Past MaxActive Pending tasks a submit is refused with Retry-After until a
// task finishes; finished tasks do not count.
func TestTooManyActiveTasks(t *testing.T) {
	e := newHTTPEnv(t, Config{MaxActive: 2, GenerateDuration: Duration(10 * time.Second)})
	ft := e.readyFinetune(nil)
	body := map[string]any{"finetune_id": ft, "prompt": "x"}
	e.submit("flux-pro-1.1-ultra-finetuned", body)
	e.clock.Advance(4 * time.Second)
	e.submit("flux-pro-1.1-ultra-finetuned", body)
	before := e.credits()
	r := e.post("/v1/flux-pro-1.1-ultra-finetuned", body)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "6" || r.apiError(t).Detail == "" {
		t.Fatalf("third submit: %d Retry-After %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if after := e.credits(); after != before {
		t.Fatalf("a refused submit was charged: %v -> %v", before, after)
	}
	e.clock.Advance(6 * time.Second)
	e.submit("flux-pro-1.1-ultra-finetuned", body)
}

// Credits fall by the price table and a submit the balance cannot pay
// answers 402.
func TestCreditsFollowPriceTable(t *testing.T) {
	e := newTransportEnv(t, Config{Credits: new(170.0)})
	if c := e.credits(); c != 170 {
		t.Fatalf("start %v", c)
	}
	ft := e.readyFinetune(map[string]any{"iterations": 300}) // 0.5 per iteration
	if c := e.credits(); c != 20 {
		t.Fatalf("after a 300-iteration finetune: %v, want 20", c)
	}
	e.submit("flux-pro-1.1-ultra-finetuned", map[string]any{"finetune_id": ft}) // 7
	e.submit("flux-pro-finetuned", map[string]any{"finetune_id": ft})           // 6
	if c := e.credits(); c != 7 {
		t.Fatalf("after ultra and pro: %v, want 7", c)
	}
	r := e.post("/v1/flux-pro-1.0-fill-finetuned", map[string]any{"finetune_id": ft, "image": pngB64(t, 16, 16)}) // 6
	if r.status != http.StatusOK {
		t.Fatalf("fill: %d %s", r.status, r.body)
	}
	r = e.post("/v1/flux-pro-1.1-ultra-finetuned", map[string]any{"finetune_id": ft})
	if r.status != http.StatusPaymentRequired || !strings.Contains(r.apiError(t).Detail, "credits") {
		t.Fatalf("out of credits: %d %s", r.status, r.body)
	}
	if c := e.credits(); c != 1 {
		t.Fatalf("a 402 was charged: %v", c)
	}
}

// Generating with an unknown finetune is 404; with one still training or
// failed, 422 on finetune_id saying why. Neither costs anything.
func TestGenerateNeedsReadyFinetune(t *testing.T) {
	e := newHTTPEnv(t, Config{TrainDuration: Duration(time.Minute)})
	r := e.post("/v1/flux-pro-1.1-ultra-finetuned", map[string]any{"finetune_id": "no-such-model"})
	if r.status != http.StatusNotFound || !strings.Contains(r.apiError(t).Detail, "not found") {
		t.Fatalf("unknown: %d %s", r.status, r.body)
	}
	training := e.submit("finetune", map[string]any{"file_data": datasetZIP(t, 1, false), "finetune_comment": "x", "mode": "style"})
	failed := e.submit("finetune", map[string]any{"file_data": datasetZIP(t, 1, false), "finetune_comment": "x [sim:error]", "mode": "style"})
	e.clock.Advance(30 * time.Second)
	before := e.credits()
	r = e.post("/v1/flux-pro-1.1-ultra-finetuned", map[string]any{"finetune_id": training.ID})
	if err := r.apiError(t); r.status != http.StatusUnprocessableEntity || err.Field() != "finetune_id" ||
		!strings.Contains(err.Issues[0].Msg, "still training") {
		t.Fatalf("training: %d %s", r.status, r.body)
	}
	e.clock.Advance(30 * time.Second)
	r = e.post("/v1/flux-pro-1.1-ultra-finetuned", map[string]any{"finetune_id": failed.ID})
	if err := r.apiError(t); r.status != http.StatusUnprocessableEntity || !strings.Contains(err.Issues[0].Msg, "ended Error") {
		t.Fatalf("failed: %d %s", r.status, r.body)
	}
	if after := e.credits(); after != before {
		t.Fatalf("refused generations were charged: %v -> %v", before, after)
	}
	e.submit("flux-pro-1.1-ultra-finetuned", map[string]any{"finetune_id": training.ID}) // now trained
}

// my_finetunes, finetune_details and delete_finetune agree with what was created.
func TestManagementConsistency(t *testing.T) {
	e := newHTTPEnv(t, Config{})
	a := e.readyFinetune(map[string]any{"finetune_comment": "first", "trigger_word": "ZXQ", "finetune_type": "lora", "lora_rank": 16})
	e.clock.Advance(time.Second)
	b := e.readyFinetune(map[string]any{"finetune_comment": "second", "iterations": 500, "learning_rate": 0.0002})
	var list bfl.MyFinetunes
	e.get("/v1/my_finetunes").decode(t, &list)
	if len(list.Finetunes) != 2 || list.Finetunes[0] != a || list.Finetunes[1] != b {
		t.Fatalf("my_finetunes %v, want [%s %s]", list.Finetunes, a, b)
	}
	var det bfl.FinetuneDetails
	e.get("/v1/finetune_details?finetune_id="+a).decode(t, &det)
	want := map[string]any{"finetune_comment": "first", "trigger_word": "ZXQ", "mode": "character", "finetune_type": "lora",
		"lora_rank": 16.0, "iterations": 300.0, "learning_rate": 1e-4, "priority": "quality", "captioning": true}
	for k, v := range want {
		if det.Details[k] != v {
			t.Errorf("details[%s] = %v, want %v", k, det.Details[k], v)
		}
	}
	if ts, _ := det.Details["timestamp"].(string); !strings.HasPrefix(ts, "2026-03-01T12:") {
		t.Errorf("timestamp %q", det.Details["timestamp"])
	}
	e.get("/v1/finetune_details?finetune_id="+b).decode(t, &det)
	if det.Details["iterations"] != 500.0 || det.Details["learning_rate"] != 0.0002 || det.Details["finetune_type"] != "full" {
		t.Errorf("second details %v", det.Details)
	}

	var del bfl.DeleteFinetuneResponse
	r := e.post("/v1/delete_finetune", map[string]any{"finetune_id": a})
	r.decode(t, &del)
	if r.status != http.StatusOK || del.DeletedFinetuneID != a || del.Status == "" || del.Message == "" || del.Timestamp == "" {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	e.get("/v1/my_finetunes").decode(t, &list)
	if len(list.Finetunes) != 1 || list.Finetunes[0] != b {
		t.Fatalf("after delete: %v", list.Finetunes)
	}
	for _, r := range []reply{
		e.get("/v1/finetune_details?finetune_id=" + a),
		e.post("/v1/delete_finetune", map[string]any{"finetune_id": a}),
		e.post("/v1/flux-pro-1.1-ultra-finetuned", map[string]any{"finetune_id": a}),
	} {
		if r.status != http.StatusNotFound || !strings.Contains(r.apiError(t).Detail, a) {
			t.Fatalf("deleted finetune: %d %s", r.status, r.body)
		}
	}
	if st := e.result(e.api + "/v1/get_result?id=" + a).Status; st != bfl.StatusTaskNotFound {
		t.Fatalf("get_result of a deleted finetune: %s", st)
	}
	if r := e.get("/v1/finetune_details"); r.status != http.StatusUnprocessableEntity || r.apiError(t).Field() != "finetune_id" {
		t.Fatalf("details without id: %d %s", r.status, r.body)
	}
}

// delete_finetune with a generation's id answers 404 and leaves the
// generation alone: only a finetune's id deletes anything.
func TestDeleteFinetuneSparesGenerations(t *testing.T) {
	e := newTransportEnv(t, Config{})
	ft := e.readyFinetune(nil)
	gen := e.submit("flux-pro-1.1-ultra-finetuned", map[string]any{"finetune_id": ft, "prompt": "TOK"})
	r := e.post("/v1/delete_finetune", map[string]any{"finetune_id": gen.ID})
	if r.status != http.StatusNotFound || !strings.Contains(r.apiError(t).Detail, gen.ID) {
		t.Fatalf("delete_finetune of a generation: %d %s", r.status, r.body)
	}
	if res := e.result(gen.PollingURL); res.Status != bfl.StatusReady {
		t.Fatalf("the generation after a refused delete_finetune: %s", res.Status)
	}
}

// Samples die SampleTTL after their task finished; the sweeper then forgets
// them and, later, the task itself.
func TestSampleExpiry(t *testing.T) {
	e := newHTTPEnv(t, Config{SampleTTL: Duration(10 * time.Minute)})
	ft := e.readyFinetune(nil)
	gen := e.submit("flux-pro-1.1-ultra-finetuned", map[string]any{"finetune_id": ft, "prompt": "x"})
	res := e.result(gen.PollingURL)
	if img := e.fetchSample(res); img.header.Get("Cache-Control") != "private, max-age=600" {
		t.Fatalf("fresh sample: Cache-Control %q, want the link's 600 s", img.header.Get("Cache-Control"))
	}
	e.clock.Advance(10*time.Minute - time.Second)
	// A cache may keep it only as long as the link lives.
	if img := e.fetchSample(res); img.status != http.StatusOK || img.header.Get("Cache-Control") != "private, max-age=1" {
		t.Fatalf("before expiry: %d, Cache-Control %q", img.status, img.header.Get("Cache-Control"))
	}
	e.clock.Advance(time.Second)
	img := e.fetchSample(res)
	if img.status != http.StatusNotFound || !strings.Contains(string(img.body), "<Error>") || img.header.Get("Content-Type") != "application/xml" {
		t.Fatalf("after expiry: %d %q %s", img.status, img.header.Get("Content-Type"), img.body)
	}
	e.sim.sweep(e.clock.Now())
	if n := len(e.sim.samples); n != 0 {
		t.Fatalf("sweep kept %d expired samples", n)
	}
	if st := e.result(gen.PollingURL).Status; st != bfl.StatusReady {
		t.Fatalf("task forgotten too early: %s", st)
	}
	e.clock.Advance(10*time.Minute + time.Second)
	e.sim.sweep(e.clock.Now())
	if st := e.result(gen.PollingURL).Status; st != bfl.StatusTaskNotFound {
		t.Fatalf("old task still reported: %s", st)
	}
	if st := e.result(e.api + "/v1/get_result?id=" + ft).Status; st != bfl.StatusReady {
		t.Fatalf("the finetune's task must outlive sweeps: %s", st)
	}
}
