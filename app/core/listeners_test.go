package core

import (
	"slices"
	"testing"
)

func TestListenersHearInOrderUntilCancelled(t *testing.T) {
	var l Listeners[int]
	var heard []string
	var cancelB func()
	l.Add(func(v int) { heard = append(heard, "a") })
	cancelB = l.Add(func(v int) {
		heard = append(heard, "b")
		cancelB() // from inside Tell: must not deadlock
	})
	l.Tell(1)
	l.Tell(2)
	cancelB() // twice is harmless
	if want := []string{"a", "b", "a"}; !slices.Equal(heard, want) {
		t.Errorf("heard %v, want %v", heard, want)
	}
}
