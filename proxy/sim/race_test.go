//go:build race

package sim

// raceEnabled lets tests that render thousands of samples skip under the
// race detector, which makes rendering some twenty times slower.
const raceEnabled = true
