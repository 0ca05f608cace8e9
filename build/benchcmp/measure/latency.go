// Package measure holds what the benchmark and load programs share: latency
// summaries, a process's memory figures from /proc, and a realistic finetune
// request body.
package measure

import (
	"fmt"
	"slices"
	"time"
)

// Summary condenses a set of latencies into the figures the reports print.
type Summary struct {
	N    int
	Min  time.Duration
	P50  time.Duration
	P99  time.Duration
	Max  time.Duration
	Mean time.Duration
}

// Summarize sorts a copy of d and reads its percentiles by the nearest-rank
// rule, so P50 and P99 are always latencies that were really observed.
func Summarize(d []time.Duration) Summary {
	if len(d) == 0 {
		return Summary{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var total time.Duration
	for _, v := range s {
		total += v
	}
	return Summary{
		N:    len(s),
		Min:  s[0],
		P50:  rank(s, 50),
		P99:  rank(s, 99),
		Max:  s[len(s)-1],
		Mean: total / time.Duration(len(s)),
	}
}

// rank is the nearest-rank percentile of sorted s: the smallest value with at
// least p percent of the observations at or below it.
func rank(s []time.Duration, p int) time.Duration {
	i := (p*len(s) + 99) / 100
	if i < 1 {
		i = 1
	}
	return s[i-1]
}

// Ms formats a duration in milliseconds with enough precision for loopback
// latencies (tens of microseconds).
func Ms(d time.Duration) string {
	return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond))
}
