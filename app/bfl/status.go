package bfl

// Status is a task's state as get_result reports it.
type Status string

// The six statuses BFL documents. Anything else is unknown and treated as still running.
const (
	StatusTaskNotFound     Status = "Task not found"
	StatusPending          Status = "Pending"
	StatusRequestModerated Status = "Request Moderated"
	StatusContentModerated Status = "Content Moderated"
	StatusReady            Status = "Ready"
	StatusError            Status = "Error"
)

// Statuses lists the documented statuses.
var Statuses = []Status{StatusTaskNotFound, StatusPending, StatusRequestModerated, StatusContentModerated, StatusReady, StatusError}

// Known reports whether s is one of the documented statuses.
func (s Status) Known() bool {
	for _, k := range Statuses {
		if s == k {
			return true
		}
	}
	return false
}

// Terminal reports whether polling can stop: every documented status but Pending.
// An unknown status is not terminal; callers poll it up to their own deadline.
func (s Status) Terminal() bool { return s.Known() && s != StatusPending }
