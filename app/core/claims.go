package core

import "sync"

// Claims makes sure one task is followed by one goroutine at a time, when
// several may start following it (a Resume at start-up and a Generate, or
// two refreshes). The zero value is ready; it is safe for use from any
// goroutine.
type Claims struct {
	mu  sync.Mutex
	ids map[string]bool
}

// Claim takes id for the caller until release; ok is false, and there is
// nothing to release, if another caller holds it.
func (c *Claims) Claim(id string) (release func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ids[id] {
		return nil, false
	}
	if c.ids == nil {
		c.ids = map[string]bool{}
	}
	c.ids[id] = true
	return func() {
		c.mu.Lock()
		delete(c.ids, id)
		c.mu.Unlock()
	}, true
}
