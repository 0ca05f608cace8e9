package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
)

// heapInUse is the live heap after garbage collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC() // a second cycle frees what the first only finalized
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// 2,000 fetched samples hold their recipes, not their pictures: the heap
// grows by a small fraction of the pictures' total. A sample fetched again
// after it left the render cache is still, byte for byte, the picture its
// result describes, and it still dies at SampleTTL.
func TestSamplesHoldBoundedMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("2,000 renders take minutes under the race detector; the plain run covers this")
	}
	const n = 2000
	const ttl = 10 * time.Minute
	e := newTransportEnv(t, Config{SampleTTL: Duration(ttl), Credits: new(1e6)})
	e.sim.rendered.limit = 1 << 20 // so what remains to measure is the records
	ft := e.readyFinetune(nil)
	base := heapInUse()
	var first bfl.ResultResponse
	var firstBody []byte
	pictures := 0
	for i := range n {
		res := e.result(e.submit("flux-pro-finetuned", map[string]any{
			"finetune_id": ft, "prompt": fmt.Sprintf("sample %d of a fox", i), "width": 256, "height": 256}).PollingURL)
		img := e.fetchSample(res)
		if img.status != http.StatusOK {
			t.Fatalf("sample %d: %d %s", i, img.status, img.body)
		}
		pictures += len(img.body)
		if i == 0 {
			first, firstBody = res, img.body
		}
	}
	grown := heapInUse() - base
	const bound = 6 << 20
	t.Logf("heap grew %.1f MB for %d samples whose pictures total %.1f MB", mb(grown), n, mb(int64(pictures)))
	if pictures < 2*bound {
		t.Fatalf("the pictures total only %.1f MB: too little to tell records from pictures", mb(int64(pictures)))
	}
	if grown > bound {
		t.Fatalf("heap grew %.1f MB for %d samples, want under %.0f MB", mb(grown), n, mb(bound))
	}

	var described bfl.ImageResult
	if err := json.Unmarshal(first.Result, &described); err != nil || described.Seed == nil {
		t.Fatalf("result %s: %v", first.Result, err)
	}
	want, err := render(imageSpec{prompt: described.Prompt, seed: *described.Seed, width: 256, height: 256, format: "jpeg"})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(ttl - time.Second)
	again := e.fetchSample(first)
	if again.status != http.StatusOK || !bytes.Equal(again.body, firstBody) || !bytes.Equal(again.body, want) {
		t.Fatalf("refetched sample: %d, %d bytes; first fetch %d bytes, described picture %d bytes",
			again.status, len(again.body), len(firstBody), len(want))
	}
	e.clock.Advance(time.Second)
	if gone := e.fetchSample(first); gone.status != http.StatusNotFound {
		t.Fatalf("at SampleTTL: %d", gone.status)
	}
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

// Past maxImages the oldest finished image tasks are forgotten with their
// samples, so the records stay bounded however fast generations come;
// Pending tasks are kept until they finish.
func TestImageTasksAreCapped(t *testing.T) {
	e := newTransportEnv(t, Config{GenerateDuration: Duration(time.Minute)})
	e.sim.maxImages = 3
	ft := e.readyFinetune(nil)
	generate := func() bfl.AsyncResponse {
		return e.submit("flux-pro-finetuned", map[string]any{"finetune_id": ft, "width": 256, "height": 256})
	}
	var older []bfl.AsyncResponse
	for range 5 {
		older = append(older, generate())
	}
	for i, a := range older {
		if st := e.result(a.PollingURL).Status; st != bfl.StatusPending {
			t.Fatalf("pending task %d past the cap: %s", i, st)
		}
	}
	e.clock.Advance(time.Minute)
	oldest := e.result(older[0].PollingURL)
	if img := e.fetchSample(oldest); img.status != http.StatusOK {
		t.Fatalf("oldest sample before the cap bites: %d", img.status)
	}
	newest := generate()
	for i, a := range older {
		want := bfl.StatusReady
		if i < 3 {
			want = bfl.StatusTaskNotFound
		}
		if st := e.result(a.PollingURL).Status; st != want {
			t.Fatalf("task %d after the cap: %s, want %s", i, st, want)
		}
	}
	if st := e.result(newest.PollingURL).Status; st != bfl.StatusPending {
		t.Fatalf("newest task: %s", st)
	}
	if img := e.fetchSample(oldest); img.status != http.StatusNotFound {
		t.Fatalf("a forgotten task's sample: %d", img.status)
	}
}

// The render cache keeps the most recently fetched pictures within its byte
// budget and hands back exactly what rendering gives.
func TestRenderCacheKeepsRecentWithinBudget(t *testing.T) {
	specs := make([]imageSpec, 3)
	sizes := 0
	for i := range specs {
		specs[i] = imageSpec{prompt: "cache", seed: int64(i), width: 64, height: 48, format: "png"}
		data, err := render(specs[i])
		if err != nil {
			t.Fatal(err)
		}
		sizes += len(data)
	}
	c := newRenderCache(sizes-1, 1)
	for _, i := range []int{0, 1, 0, 2} { // 1 is then the least recently used
		got, err := c.get(context.Background(), specs[i])
		want, _ := render(specs[i])
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("get %d: %d bytes, want %d (%v)", i, len(got), len(want), err)
		}
	}
	_, kept0 := c.bySpec[specs[0]]
	_, kept1 := c.bySpec[specs[1]]
	_, kept2 := c.bySpec[specs[2]]
	if !kept0 || kept1 || !kept2 || c.size > c.limit || c.recent.Len() != 2 {
		t.Fatalf("kept %v %v %v, %d of %d bytes", kept0, kept1, kept2, c.size, c.limit)
	}
	tiny := newRenderCache(10, 1)
	if data, err := tiny.get(context.Background(), specs[0]); err != nil || len(data) <= 10 || tiny.recent.Len() != 0 || tiny.size != 0 {
		t.Fatalf("a picture over the whole budget: %d bytes, %d kept (%v)", len(data), tiny.recent.Len(), err)
	}
}

// No more pictures are drawn at once than the cache has slots: a fetch that
// misses waits for one, and gives up when its request ends.
func TestRenderCacheBoundsConcurrentRenders(t *testing.T) {
	c := newRenderCache(1<<20, 1)
	spec := imageSpec{prompt: "slots", seed: 1, width: 64, height: 48, format: "jpeg"}
	c.slots <- struct{}{} // a render in progress holds the only slot
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if data, err := c.get(ctx, spec); !errors.Is(err, context.DeadlineExceeded) || data != nil {
		t.Fatalf("with every slot taken: %d bytes, %v", len(data), err)
	}
	<-c.slots
	if data, err := c.get(context.Background(), spec); err != nil || len(data) == 0 || len(c.slots) != 0 {
		t.Fatalf("with a free slot: %d bytes, %v, %d slots still taken", len(data), err, len(c.slots))
	}
}

// A render that panics gives its slot back: it must not leave every later
// fetch waiting for a slot that is never freed.
func TestRenderPanicFreesSlot(t *testing.T) {
	c := newRenderCache(1<<20, 1)
	bad := imageSpec{prompt: "panics", seed: 1, format: "png"} // no pixels: drawing panics
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("rendering a 0x0 picture did not panic; the test needs a spec that does")
			}
		}()
		_, _ = c.get(context.Background(), bad)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	spec := imageSpec{prompt: "after", seed: 1, width: 64, height: 48, format: "png"}
	if data, err := c.get(ctx, spec); err != nil || len(data) == 0 || len(c.slots) != 0 {
		t.Fatalf("after a panicking render: %d bytes, %v, %d slots taken", len(data), err, len(c.slots))
	}
}
