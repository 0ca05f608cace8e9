package bfl

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// NormalizeProgress puts a get_result progress on a 0–100 scale. BFL has been
// seen reporting both fractions and percentages; a value up to 1 is read as a
// fraction, since a genuine 1 % reading is brief and harmless to overstate
// while a finished 1.0 shown as 1 % is not. nil (no progress) stays nil.
func NormalizeProgress(p *float64) *float64 {
	if p == nil || math.IsNaN(*p) {
		return nil
	}
	v := *p
	if v <= 1 {
		v *= 100
	}
	v = math.Max(0, math.Min(100, v))
	return &v
}

// Percent is the answer's progress on a 0–100 scale, as NormalizeProgress
// reads it, and below 100 while the task still runs: a first 1 on BFL's
// 0–100 scale reads as a whole fraction, and "still running (100%)" would
// contradict itself.
func (r ResultResponse) Percent() *float64 {
	p := NormalizeProgress(r.Progress)
	if p != nil && !r.Status.Terminal() {
		*p = min(*p, 99)
	}
	return p
}

// ErrAspectRatio is wrapped by every ParseAspectRatio failure.
var ErrAspectRatio = errors.New("aspect ratio")

// ParseAspectRatio reads "W:H" with positive whole numbers whose ratio lies
// between 21:9 and 9:21, the range the ultra endpoint accepts.
func ParseAspectRatio(s string) (w, h int, err error) {
	ws, hs, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("%w %q should be written W:H, e.g. 16:9", ErrAspectRatio, s)
	}
	// 32 bits keeps 21*w and 9*h far from overflowing.
	wu, werr := strconv.ParseUint(ws, 10, 32)
	hu, herr := strconv.ParseUint(hs, 10, 32)
	if werr != nil || herr != nil || wu == 0 || hu == 0 {
		return 0, 0, fmt.Errorf("%w %q should be two positive whole numbers, e.g. 16:9", ErrAspectRatio, s)
	}
	if 9*wu > 21*hu || 21*wu < 9*hu {
		return 0, 0, fmt.Errorf("%w %q should be between 21:9 and 9:21", ErrAspectRatio, s)
	}
	return int(wu), int(hu), nil
}
