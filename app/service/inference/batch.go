package inference

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/fluxforge/fluxforge/app/service/gallery"
)

// Variations returns n copies of the form, each with its own locked seed: a
// locked seed counts up from its value (repeatable), an unlocked one is random.
func Variations(f Form, n int) []Form {
	out := make([]Form, 0, n)
	used := map[int64]bool{}
	for i := range n {
		seed := f.Seed.Value + int64(i)
		if !f.Seed.Locked {
			seed = Seed{}.Pick()
			for used[seed] {
				seed = Seed{}.Pick()
			}
		}
		used[seed] = true
		out = append(out, f.with(Seed{Locked: true, Value: seed}, nil))
	}
	return out
}

// Grid returns one form per finetune strength and seed, strengths varying fastest.
func Grid(f Form, strengths []float64, seeds []int64) []Form {
	out := make([]Form, 0, len(strengths)*len(seeds))
	for _, seed := range seeds {
		for _, st := range strengths {
			out = append(out, f.with(Seed{Locked: true, Value: seed}, map[string]string{
				"finetune_strength": strconv.FormatFloat(st, 'f', -1, 64),
			}))
		}
	}
	return out
}

// with copies the form with a seed and overriding values; the values map is
// cloned so the copies never share it.
func (f Form) with(seed Seed, values map[string]string) Form {
	f.Values = maps.Clone(f.Values)
	if f.Values == nil {
		f.Values = map[string]string{}
	}
	maps.Copy(f.Values, values)
	f.Seed = seed
	return f
}

// Result is one task of a batch.
type Result struct {
	Record gallery.Record
	Err    error
}

// Batch runs the forms together under one batch id. Every task waits for a
// free slot, so no more than MaxInFlight are in flight however large the batch.
func (s *Service) Batch(ctx context.Context, forms []Form, update func(i int, r gallery.Record)) []Result {
	id := fmt.Sprintf("batch-%d", s.now().UnixNano()/int64(time.Millisecond))
	out := make([]Result, len(forms))
	var wg sync.WaitGroup
	for i, f := range forms {
		f.Batch = id
		wg.Go(func() {
			rec, err := s.Generate(ctx, f, func(r gallery.Record) {
				if update != nil {
					update(i, r)
				}
			})
			out[i] = Result{Record: rec, Err: err}
		})
	}
	wg.Wait()
	return out
}
