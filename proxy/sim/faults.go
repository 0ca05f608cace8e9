package sim

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// maxSlow bounds [sim:slow=...] so a typo cannot hold a request for hours.
const maxSlow = 5 * time.Minute

var markerPattern = regexp.MustCompile(`\[sim:([^\]=]*)(?:=([^\]]*))?\]`)

// faults are the markers found in a prompt or finetune_comment; see the
// package documentation for what each one does.
type faults struct {
	fail             bool // [sim:error]
	requestModerated bool // [sim:request-moderated]
	contentModerated bool // [sim:content-moderated]
	serverError      bool // [sim:500]
	tooMany          bool // [sim:429]
	expire           bool // [sim:expire]
	slow             time.Duration
	invalidField     string // [sim:422=<field>]
}

// parseFaults reads every marker in text. An unknown or malformed marker is
// an error rather than ignored, so a typo in a test or demo is noticed.
func parseFaults(text string) (faults, error) {
	var f faults
	for _, m := range markerPattern.FindAllStringSubmatch(text, -1) {
		name, value := m[1], m[2]
		hasValue := strings.Contains(m[0], "=")
		switch {
		case name == "error" && !hasValue:
			f.fail = true
		case name == "request-moderated" && !hasValue:
			f.requestModerated = true
		case name == "content-moderated" && !hasValue:
			f.contentModerated = true
		case name == "500" && !hasValue:
			f.serverError = true
		case name == "429" && !hasValue:
			f.tooMany = true
		case name == "expire" && !hasValue:
			f.expire = true
		case name == "slow" && hasValue:
			var d Duration
			if err := d.UnmarshalText([]byte(value)); err != nil {
				return faults{}, fmt.Errorf("marker %s: %w", m[0], err)
			}
			f.slow = min(d.D(), maxSlow)
		case name == "422" && value != "":
			f.invalidField = value
		default:
			return faults{}, fmt.Errorf("unknown simulator marker %s; known: [sim:error], [sim:request-moderated], "+
				"[sim:content-moderated], [sim:500], [sim:429], [sim:expire], [sim:slow=2s], [sim:422=<field>]", m[0])
		}
	}
	return f, nil
}
