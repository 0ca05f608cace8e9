package core

import "testing"

func TestClaimsGiveATaskToOneFollowerAtATime(t *testing.T) {
	var c Claims
	release, ok := c.Claim("task-1")
	if !ok {
		t.Fatal("the first claim was refused")
	}
	if _, ok := c.Claim("task-1"); ok {
		t.Error("a second claim on a held task was granted")
	}
	if r, ok := c.Claim("task-2"); !ok {
		t.Error("a claim on another task was refused")
	} else {
		r()
	}
	release()
	if r, ok := c.Claim("task-1"); !ok {
		t.Error("a released task could not be claimed again")
	} else {
		r()
	}
}
