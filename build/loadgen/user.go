package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// api talks to the proxy as the PWA does.
type api struct {
	base     string // http://host:port
	token    string
	client   *http.Client
	rec      *recorder
	timeout  time.Duration
	endpoint string // the generation endpoint
}

// errLimited marks a 429: the simulator's cap on tasks in flight.
var errLimited = errors.New("429 too many active tasks")

// do sends one request and records it under kind. want is the status that
// counts as success; the body of a successful answer is returned.
func (a *api) do(ctx context.Context, kind, method, path string, body []byte) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("build %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	start := time.Now()
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, nil, a.transportError(ctx, kind, err)
	}
	out, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return nil, nil, a.transportError(ctx, kind, err)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests && kind == kindSubmit:
		a.rec.limited(kind)
		return nil, resp.Header, errLimited
	case resp.StatusCode != http.StatusOK:
		a.rec.fail(kind, "HTTP "+strconv.Itoa(resp.StatusCode))
		return nil, nil, fmt.Errorf("%s %s: status %d: %.200s", method, path, resp.StatusCode, out)
	}
	if kind == kindImage && !strings.HasPrefix(resp.Header.Get("Content-Type"), "image/") {
		a.rec.fail(kind, "not an image: "+resp.Header.Get("Content-Type"))
		return nil, nil, fmt.Errorf("%s: content type %q", path, resp.Header.Get("Content-Type"))
	}
	a.rec.ok(kind, took)
	return out, resp.Header, nil
}

// transportError records a failed exchange, unless the run itself ended:
// requests cut by the end of the test are not the proxy's failures.
func (a *api) transportError(ctx context.Context, kind string, err error) error {
	if context.Cause(ctx) != nil && errors.Is(context.Cause(ctx), errRunOver) {
		return err
	}
	a.rec.fail(kind, reasonOf(err))
	return err
}

// errRunOver cancels the clients' context when the test's time is up.
var errRunOver = errors.New("load test over")

type submitted struct {
	ID         string `json:"id"`
	PollingURL string `json:"polling_url"`
}

type polled struct {
	Status string `json:"status"`
	Result struct {
		Sample     string `json:"sample"`
		FinetuneID string `json:"finetune_id"`
	} `json:"result"`
}

// pollUntilDone polls a polling_url through /api/poll every interval until a
// terminal status, as the PWA does.
func (a *api) pollUntilDone(ctx context.Context, pollingURL string, every, limit time.Duration) (polled, error) {
	deadline := time.Now().Add(limit)
	for {
		if err := sleep(ctx, every); err != nil {
			return polled{}, err
		}
		b, _, err := a.do(ctx, kindPoll, http.MethodGet, "/api/poll?url="+url.QueryEscape(pollingURL), nil)
		if err != nil {
			return polled{}, err
		}
		var p polled
		if err := json.Unmarshal(b, &p); err != nil {
			a.rec.fail(kindPoll, "answer is not JSON")
			return polled{}, fmt.Errorf("poll answer: %w", err)
		}
		if p.Status != "Pending" {
			return p, nil
		}
		if time.Now().After(deadline) {
			a.rec.fail(kindPoll, "still Pending after "+limit.String())
			return polled{}, fmt.Errorf("task still Pending after %v", limit)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// user is one simulated person at the PWA: generate (submit, poll, fetch
// the image), browse the models, or glance at the credits, with a pause
// between actions.
type user struct {
	a       *api
	id      int
	model   string
	think   time.Duration
	rng     *rand.Rand
	ratios  []string
	counter int
}

func (u *user) run(ctx context.Context) {
	for ctx.Err() == nil {
		switch r := u.rng.Float64(); {
		case r < 0.5:
			u.generate(ctx)
		case r < 0.8:
			u.browse(ctx)
		default:
			_, _, _ = u.a.do(ctx, kindCredits, http.MethodGet, "/api/v1/credits", nil)
		}
		if u.think > 0 {
			_ = sleep(ctx, time.Duration(u.rng.Int64N(int64(2*u.think))))
		}
	}
}

func (u *user) generate(ctx context.Context) {
	u.counter++
	body, err := json.Marshal(map[string]any{
		"finetune_id":   u.model,
		"prompt":        fmt.Sprintf("TOK as a lighthouse keeper at dusk, study %d-%d", u.id, u.counter),
		"aspect_ratio":  u.ratios[u.rng.IntN(len(u.ratios))],
		"seed":          u.rng.IntN(1 << 30),
		"output_format": "jpeg",
	})
	if err != nil {
		return
	}
	b, h, err := u.a.do(ctx, kindSubmit, http.MethodPost, "/api/v1/"+u.a.endpoint, body)
	if errors.Is(err, errLimited) {
		// Honour Retry-After as the PWA does, but a person gives up waiting
		// after a few seconds and does something else.
		wait := 2 * time.Second
		if s, perr := strconv.Atoi(h.Get("Retry-After")); perr == nil && s > 0 {
			wait = min(time.Duration(s)*time.Second, 5*time.Second)
		}
		_ = sleep(ctx, wait)
		return
	}
	if err != nil {
		return
	}
	var s submitted
	if err := json.Unmarshal(b, &s); err != nil || s.PollingURL == "" {
		u.a.rec.fail(kindSubmit, "answer lacks polling_url")
		return
	}
	p, err := u.a.pollUntilDone(ctx, s.PollingURL, 500*time.Millisecond, time.Minute)
	if err != nil {
		return
	}
	if p.Status != "Ready" || p.Result.Sample == "" {
		u.a.rec.fail(kindPoll, "ended "+p.Status)
		return
	}
	_, _, _ = u.a.do(ctx, kindImage, http.MethodGet, "/api/image?url="+url.QueryEscape(p.Result.Sample), nil)
}

// browse lists the finetunes and fetches the details of a few at once, as
// the model browser does.
func (u *user) browse(ctx context.Context) {
	b, _, err := u.a.do(ctx, kindList, http.MethodGet, "/api/v1/my_finetunes", nil)
	if err != nil {
		return
	}
	var list struct {
		Finetunes []string `json:"finetunes"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		u.a.rec.fail(kindList, "answer is not JSON")
		return
	}
	ids := list.Finetunes[:min(len(list.Finetunes), 4)]
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for _, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			_, _, _ = u.a.do(ctx, kindDetails, http.MethodGet, "/api/v1/finetune_details?finetune_id="+url.QueryEscape(id), nil)
		})
	}
	wg.Wait()
}
