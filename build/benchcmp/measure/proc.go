package measure

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Mem is a process's memory as Linux reports it in /proc/<pid>/status.
type Mem struct {
	RSS     int64 // VmRSS in bytes: resident now
	HWM     int64 // VmHWM in bytes: the peak resident size since the process started
	Threads int
}

// ReadMem reads /proc/<pid>/status.
func ReadMem(pid int) (Mem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	m, err := parseStatus(b)
	if err != nil {
		return Mem{}, fmt.Errorf("parse /proc/%d/status: %w", pid, err)
	}
	return m, nil
}

func parseStatus(b []byte) (Mem, error) {
	var m Mem
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch key {
		case "VmRSS":
			m.RSS = n * 1024
			seen++
		case "VmHWM":
			m.HWM = n * 1024
			seen++
		case "Threads":
			m.Threads = int(n)
		}
	}
	if seen < 2 {
		return Mem{}, fmt.Errorf("no VmRSS/VmHWM lines")
	}
	return m, nil
}

// MB formats bytes as mebibytes.
func MB(n int64) string {
	return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
}

// PeakSampler polls a process's VmRSS until stopped and keeps the largest
// value seen. VmHWM alone cannot say what happened during one request of a
// long-lived process: it may have peaked earlier.
type PeakSampler struct {
	stop func()
	done chan struct{}
	mu   sync.Mutex
	peak int64
	err  error
}

// SamplePeak starts sampling pid every interval.
func SamplePeak(pid int, interval time.Duration) *PeakSampler {
	ctx, cancel := context.WithCancel(context.Background())
	p := &PeakSampler{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			m, err := ReadMem(pid)
			p.mu.Lock()
			if err != nil && p.err == nil {
				p.err = err
			}
			p.peak = max(p.peak, m.RSS)
			p.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// Stop ends sampling and returns the peak VmRSS seen, or the first read error.
func (p *PeakSampler) Stop() (int64, error) {
	p.stop()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak, p.err
}
