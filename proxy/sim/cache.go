package sim

import (
	"container/list"
	"context"
	"fmt"
	"sync"
)

// renderCacheBytes bounds the rendered samples kept in memory: some thirty
// ultra JPEGs, enough for a HEAD then a GET, or a retry, to draw a sample
// once. It is small because most samples are fetched once, and the garbage
// collector lets the heap grow to twice what is live: under load, 32 MB of
// cache cost some 60 MB of the proxy's memory.
const renderCacheBytes = 8 << 20

// renderCache keeps the most recently fetched samples' bytes up to a byte
// budget, by recipe. Anything evicted is drawn again on its next fetch, to
// the same bytes.
//
// It also bounds how many pictures are drawn at once. Drawing is CPU-bound,
// so more renders than processors only add their buffers (4 MB of pixels
// for a megapixel) to the heap: 200 clients fetching together must not
// hold 200 of them.
type renderCache struct {
	slots chan struct{} // one per render in progress

	mu     sync.Mutex
	limit  int // bytes
	size   int
	recent *list.List // of *rendered, most recently used first
	bySpec map[imageSpec]*list.Element
}

type rendered struct {
	spec imageSpec
	data []byte
}

func newRenderCache(limit, renders int) *renderCache {
	return &renderCache{slots: make(chan struct{}, renders), limit: limit, recent: list.New(),
		bySpec: make(map[imageSpec]*list.Element)}
}

// get returns the picture for spec, rendering it outside the lock on a miss
// once a render slot is free, or failing with ctx's error if ctx ends first.
// Fetches that miss together each render; rendering is deterministic, so
// they send the same bytes.
func (c *renderCache) get(ctx context.Context, spec imageSpec) ([]byte, error) {
	c.mu.Lock()
	if el, ok := c.bySpec[spec]; ok {
		c.recent.MoveToFront(el)
		data := el.Value.(*rendered).data
		c.mu.Unlock()
		return data, nil
	}
	c.mu.Unlock()
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait to render a sample: %w", ctx.Err())
	}
	// Deferred: a render that panics must still free its slot, or every
	// later fetch would wait for one that never comes back.
	defer func() { <-c.slots }()
	data, err := render(spec)
	if err != nil {
		return nil, err
	}
	c.put(spec, data)
	return data, nil
}

// put keeps data, evicting the least recently used pictures past the budget.
// A picture larger than the whole budget is not kept.
func (c *renderCache) put(spec imageSpec, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.bySpec[spec]; ok || len(data) > c.limit {
		return
	}
	c.bySpec[spec] = c.recent.PushFront(&rendered{spec: spec, data: data})
	c.size += len(data)
	for c.size > c.limit {
		old := c.recent.Remove(c.recent.Back()).(*rendered)
		delete(c.bySpec, old.spec)
		c.size -= len(old.data)
	}
}
