package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
)

func getenvFrom(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{}, "SIM_KEY is required"},
		{map[string]string{"SIM_KEY": "k", "SIM_TRAIN_SECONDS": "later"}, "SIM_TRAIN_SECONDS"},
		{map[string]string{"SIM_KEY": "k", "SIM_MAX_ACTIVE": "0"}, "SIM_MAX_ACTIVE"},
		{map[string]string{"SIM_KEY": "k", "SIM_CREDITS": "-1"}, "SIM_CREDITS"},
		{map[string]string{"SIM_KEY": "k", "SIM_PUBLIC_URL": "ftp://x"}, "SIM_PUBLIC_URL"},
		{map[string]string{"SIM_KEY": "k", "SIM_PUBLIC_URL": "http://h:1/base"}, "SIM_PUBLIC_URL"},
	} {
		err := run(context.Background(), getenvFrom(c.vars), io.Discard)
		if !errors.Is(err, errConfig) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want one line about %s", c.vars, err, c.want)
		}
	}
	if err := run(context.Background(), getenvFrom(map[string]string{"SIM_KEY": "k", "ADDR": "256.0.0.1:1"}), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "ADDR") {
		t.Errorf("bad ADDR: %v", err)
	}
}

// The standalone server needs the key, writes links on its own address,
// serves the whole flow, and exits cleanly when its context ends.
func TestServeFlowAndShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, getenvFrom(map[string]string{"SIM_KEY": "k1", "ADDR": "127.0.0.1:0",
			"SIM_TRAIN_SECONDS": "0", "SIM_GENERATE_SECONDS": "0"}), outW)
		outW.Close()
	}()
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	var base string
	select {
	case l := <-line:
		base = regexp.MustCompile(`http://127\.0\.0\.1:\d+`).FindString(l)
		if base == "" {
			t.Fatalf("no address in %q", l)
		}
	case err := <-done:
		t.Fatalf("run returned early: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no banner")
	}
	client := &http.Client{Timeout: 20 * time.Second}
	call := func(method, url, key string, body any) (int, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, url, rd)
		if key != "" {
			req.Header.Set("x-key", key)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	if status, _ := call(http.MethodGet, base+"/v1/credits", "", nil); status != http.StatusForbidden {
		t.Fatalf("no key: %d", status)
	}
	status, b := call(http.MethodPost, base+"/v1/finetune", "k1", map[string]any{
		"file_data": oneImageZIP(t), "finetune_comment": "c", "mode": "style"})
	var ft bfl.AsyncResponse
	if err := json.Unmarshal(b, &ft); err != nil || status != http.StatusOK || !strings.HasPrefix(ft.PollingURL, base+"/v1/get_result?id=") {
		t.Fatalf("finetune: %d %s", status, b)
	}
	status, b = call(http.MethodPost, base+"/v1/flux-pro-1.1-ultra-finetuned", "k1", map[string]any{
		"finetune_id": ft.ID, "prompt": "p", "aspect_ratio": "1:1", "output_format": "png"})
	var gen bfl.AsyncResponse
	if err := json.Unmarshal(b, &gen); err != nil || status != http.StatusOK {
		t.Fatalf("generate: %d %s", status, b)
	}
	_, b = call(http.MethodGet, gen.PollingURL, "k1", nil)
	var res bfl.ResultResponse
	var img bfl.ImageResult
	if err := json.Unmarshal(b, &res); err != nil || json.Unmarshal(res.Result, &img) != nil || !strings.HasPrefix(img.Sample, base+"/delivery/") {
		t.Fatalf("result: %s", b)
	}
	status, b = call(http.MethodGet, img.Sample, "", nil)
	if cfg, err := png.DecodeConfig(bytes.NewReader(b)); status != http.StatusOK || err != nil || cfg.Width != cfg.Height {
		t.Fatalf("sample: %d %v %+v", status, err, cfg)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func oneImageZIP(t *testing.T) string {
	var img, z bytes.Buffer
	if err := png.Encode(&img, image.NewGray(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(&z)
	w, err := zw.Create("a.png")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(img.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(z.Bytes())
}
