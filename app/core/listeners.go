package core

import (
	"slices"
	"sync"
)

// Listeners is the set of functions a service tells about each change, for
// the tabs that show it while they are mounted. The zero value is ready;
// it is safe for use from any goroutine.
type Listeners[T any] struct {
	mu   sync.Mutex
	next int
	all  []listener[T]
}

type listener[T any] struct {
	id int
	fn func(T)
}

// Add makes fn hear every change until cancel is called. Calling cancel
// twice is harmless.
func (l *Listeners[T]) Add(fn func(T)) (cancel func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	id := l.next
	l.all = append(l.all, listener[T]{id: id, fn: fn})
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.all = slices.DeleteFunc(l.all, func(x listener[T]) bool { return x.id == id })
	}
}

// Tell calls every listener, in the order they were added, without holding
// the lock, so a listener may add another or cancel itself.
func (l *Listeners[T]) Tell(v T) {
	l.mu.Lock()
	all := slices.Clone(l.all)
	l.mu.Unlock()
	for _, x := range all {
		x.fn(v)
	}
}
