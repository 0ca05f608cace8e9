package sim

import (
	"container/list"
	"sync"
)

// renderCacheBytes bounds the rendered samples kept in memory: about a
// hundred ultra JPEGs, enough for a HEAD then a GET, or a retry, to draw a
// sample once, however many samples are alive.
const renderCacheBytes = 32 << 20

// renderCache keeps the most recently fetched samples' bytes up to a byte
// budget, by recipe. Anything evicted is drawn again on its next fetch, to
// the same bytes.
type renderCache struct {
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

func newRenderCache(limit int) *renderCache {
	return &renderCache{limit: limit, recent: list.New(), bySpec: make(map[imageSpec]*list.Element)}
}

// get returns the picture for spec, rendering it outside the lock on a miss.
// Fetches that miss together each render; rendering is deterministic, so
// they send the same bytes.
func (c *renderCache) get(spec imageSpec) ([]byte, error) {
	c.mu.Lock()
	if el, ok := c.bySpec[spec]; ok {
		c.recent.MoveToFront(el)
		data := el.Value.(*rendered).data
		c.mu.Unlock()
		return data, nil
	}
	c.mu.Unlock()
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
