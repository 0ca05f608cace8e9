package models

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ids(ms []Model) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func TestRefreshFetchesDetailsConcurrentlyWithinTheBound(t *testing.T) {
	ctx := testCtx(t)
	acc := newAccount(20 * time.Millisecond)
	for i := range 30 {
		acc.add(fmt.Sprintf("ft-%02d", i), fmt.Sprintf("Model %02d", i), "Ready")
	}
	svc := New(acc.api(), core.NewMemoryStorage(), 6)
	list, err := svc.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 30 {
		t.Fatalf("got %d models, want 30", len(list))
	}
	// my_finetunes runs alone; the details and status calls overlap up to the bound.
	if p := acc.peak(); p > 6 || p < 3 {
		t.Fatalf("peak concurrency %d, want between 3 and 6", p)
	}
	m, ok := Find(list, "ft-07")
	if !ok {
		t.Fatal("ft-07 missing")
	}
	if m.Name != "Model 07" || m.TriggerWord != "TOKft-07" || m.Mode != "character" || m.Type != "lora" ||
		m.Rank != 16 || m.Iterations != 300 || m.LearningRate == nil || *m.LearningRate != 0.0001 ||
		m.Priority != "quality" || m.Status != bfl.StatusReady || m.Created.IsZero() {
		t.Fatalf("details not mapped: %+v", m)
	}
}

func TestRefreshUsesTheCacheAndDropsDeletedModels(t *testing.T) {
	ctx := testCtx(t)
	acc := newAccount(0)
	acc.add("a", "Alpha", "Ready")
	acc.add("b", "Beta", "Pending")
	store := core.NewMemoryStorage()
	svc := New(acc.api(), store, 0)
	if _, err := svc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	first := acc.count("/api/v1/finetune_details")
	acc.mu.Lock()
	acc.status["b"] = "Ready"
	acc.ids = []string{"b"} // "a" deleted elsewhere
	acc.mu.Unlock()
	list, err := svc.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := acc.count("/api/v1/finetune_details") - first; got != 0 {
		t.Fatalf("cached details fetched again %d times", got)
	}
	if !slices.Equal(ids(list), []string{"b"}) || list[0].Status != bfl.StatusReady {
		t.Fatalf("list after refresh: %+v", list)
	}
	cached, err := svc.Cached(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(cached), []string{"b"}) {
		t.Fatalf("cache holds %v, want [b]", ids(cached))
	}
	// A Ready model's status is not asked again.
	before := acc.count("/api/v1/get_result")
	if _, err := svc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if acc.count("/api/v1/get_result") != before {
		t.Fatal("status of a Ready model was fetched again")
	}
}

func TestRefreshKeepsAPerModelError(t *testing.T) {
	ctx := testCtx(t)
	acc := newAccount(0)
	acc.add("a", "Alpha", "Ready")
	acc.mu.Lock()
	acc.ids = append(acc.ids, "ghost") // listed, but details answer 404
	acc.mu.Unlock()
	list, err := New(acc.api(), core.NewMemoryStorage(), 0).Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := Find(list, "ghost")
	if !strings.Contains(g.Error, "details") {
		t.Fatalf("ghost error = %q", g.Error)
	}
	if a, _ := Find(list, "a"); a.Error != "" || a.Name != "Alpha" {
		t.Fatalf("alpha = %+v", a)
	}
}

func TestMergeShowsLocalJobs(t *testing.T) {
	ctx := testCtx(t)
	acc := newAccount(0)
	acc.add("a", "Alpha", "Ready")
	store := core.NewMemoryStorage()
	p := 50.0 // stored on the 0..100 scale
	for _, j := range []job{
		{ID: "training", Name: "Still training", TriggerWord: "ZAP", Status: bfl.StatusPending, Progress: &p, Started: time.Now()},
		{ID: "a", Name: "Alpha job", Status: bfl.StatusReady},
		{Name: "not started"},
	} {
		key := j.ID
		if key == "" {
			key = "draft"
		}
		if err := store.Put(ctx, core.StoreJobs, key, j); err != nil {
			t.Fatal(err)
		}
	}
	list, err := New(acc.api(), store, 0).Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("want a and training, got %v", ids(list))
	}
	tr, ok := Find(list, "training")
	if !ok || !tr.Local || tr.Status != bfl.StatusPending || tr.Progress == nil || *tr.Progress != 50 {
		t.Fatalf("training job: %+v", tr)
	}
	if ready, why := tr.Readiness(); ready || !strings.Contains(why, "still training (50%)") {
		t.Fatalf("readiness of training job = %v %q", ready, why)
	}
	a, _ := Find(list, "a")
	if !a.Local || a.Name != "Alpha" {
		t.Fatalf("listed model should keep its details and be marked local: %+v", a)
	}
}

func TestJobProgressIsAlreadyAPercentage(t *testing.T) {
	ctx := testCtx(t)
	store := core.NewMemoryStorage()
	// The finetuning service stores progress on the 0..100 scale: a job just
	// begun is at half a percent, not half done.
	for id, p := range map[string]float64{"begun": 0.5, "most": 80} {
		if err := store.Put(ctx, core.StoreJobs, id, job{ID: id, Status: bfl.StatusPending, Progress: &p}); err != nil {
			t.Fatal(err)
		}
	}
	list, err := New(newAccount(0).api(), store, 0).Cached(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]float64{"begun": 0.5, "most": 80} {
		m, ok := Find(list, id)
		if !ok || m.Progress == nil {
			t.Fatalf("job %s listed %v, without progress", id, ok)
		}
		if *m.Progress != want {
			t.Errorf("job %s shows %v%%, want %v%%", id, *m.Progress, want)
		}
	}
}

func TestReadiness(t *testing.T) {
	for _, tc := range []struct {
		st    bfl.Status
		ready bool
		want  string
	}{
		{bfl.StatusReady, true, ""},
		{bfl.StatusPending, false, "still training"},
		{bfl.StatusError, false, "failed"},
		{bfl.StatusRequestModerated, false, "moderation"},
		{bfl.StatusContentModerated, false, "moderation"},
		{"", false, "not known"},
		{"Queued", false, `"Queued"`},
	} {
		ready, why := Model{ID: "x", Name: "Cat", Status: tc.st}.Readiness()
		if ready != tc.ready || !strings.Contains(why, tc.want) {
			t.Errorf("%q: got %v %q", tc.st, ready, why)
		}
	}
}

func TestStatusTreatsAForgottenTrainingTaskAsReady(t *testing.T) {
	acc := newAccount(0)
	st, err := New(acc.api(), core.NewMemoryStorage(), 0).Status(testCtx(t), "old")
	if err != nil || st.Status != bfl.StatusReady {
		t.Fatalf("got %+v %v", st, err)
	}
}

func TestDeleteRemovesFromAccountAndCache(t *testing.T) {
	ctx := testCtx(t)
	acc := newAccount(0)
	acc.add("a", "Alpha", "Ready")
	acc.add("b", "Beta", "Ready")
	store := core.NewMemoryStorage()
	svc := New(acc.api(), store, 0)
	if _, err := svc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	cached, _ := svc.Cached(ctx)
	if !slices.Equal(ids(cached), []string{"b"}) {
		t.Fatalf("cache after delete: %v", ids(cached))
	}
	// Already gone on BFL: still succeeds.
	if err := svc.Delete(ctx, "a"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
}

func TestDeleteReportsOtherFailures(t *testing.T) {
	ctx := testCtx(t)
	acc := newAccount(0)
	acc.add("a", "Alpha", "Ready")
	acc.failDelete = true
	store := core.NewMemoryStorage()
	svc := New(acc.api(), store, 0)
	if _, err := svc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	err := svc.Delete(ctx, "a")
	var apiErr *core.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 500 {
		t.Fatalf("want an APIError 500, got %v", err)
	}
	if cached, _ := svc.Cached(ctx); len(cached) != 1 {
		t.Fatal("a model whose deletion failed must stay in the cache")
	}
}

func TestSearchAndSort(t *testing.T) {
	lr1, lr2 := 1e-5, 1e-4
	ms := []Model{
		{ID: "1", Name: "Portrait of Ada", TriggerWord: "ADA", Mode: "character", Type: "full", Rank: 32, Iterations: 500, LearningRate: &lr1, Priority: "quality", Status: bfl.StatusReady, Created: time.Unix(300, 0)},
		{ID: "2", Name: "watercolour style", TriggerWord: "WTC", Mode: "style", Type: "lora", Rank: 16, Iterations: 300, LearningRate: &lr2, Priority: "speed", Status: bfl.StatusPending, Created: time.Unix(100, 0)},
		{ID: "3", Name: "Bottle", TriggerWord: "btl", Mode: "product", Type: "lora", Rank: 32, Iterations: 1000, Priority: "high_res_only", Status: bfl.StatusError, Created: time.Unix(200, 0)},
	}
	if got := ids(Search(ms, "ada")); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("search ada: %v", got)
	}
	if got := ids(Search(ms, "LORA bottle")); !slices.Equal(got, []string{"3"}) {
		t.Fatalf("search lora bottle (every word must match): %v", got)
	}
	if got := ids(Search(ms, "  ")); len(got) != 3 {
		t.Fatalf("empty search: %v", got)
	}
	want := map[Column][]string{
		ColumnName:         {"3", "1", "2"},
		ColumnTriggerWord:  {"1", "3", "2"},
		ColumnMode:         {"1", "3", "2"},
		ColumnType:         {"1", "2", "3"},
		ColumnRank:         {"2", "1", "3"},
		ColumnIterations:   {"2", "1", "3"},
		ColumnLearningRate: {"3", "1", "2"},
		ColumnPriority:     {"3", "1", "2"},
		ColumnStatus:       {"3", "2", "1"},
		ColumnCreated:      {"2", "3", "1"},
	}
	for _, c := range Columns {
		s := slices.Clone(ms)
		SortBy(s, c.Column, false)
		if got := ids(s); !slices.Equal(got, want[c.Column]) {
			t.Errorf("sort by %s: %v, want %v", c.Column, got, want[c.Column])
		}
		SortBy(s, c.Column, true)
		by := compareBy(c.Column)
		for i := 1; i < len(s); i++ {
			if r := by(s[i-1], s[i]); r < 0 || r == 0 && s[i-1].ID > s[i].ID {
				t.Errorf("sort by %s descending: %v out of order at %d", c.Column, ids(s), i)
			}
		}
	}
}

func TestParseTimeAcceptsTheShapesSeen(t *testing.T) {
	want := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	for _, v := range []any{"2025-03-01T10:00:00Z", "2025-03-01T10:00:00", "2025-03-01 10:00:00", float64(want.Unix()), fmt.Sprint(want.Unix())} {
		if got := parseTime(v); !got.Equal(want) {
			t.Errorf("%v: got %v", v, got)
		}
	}
	if !parseTime("yesterday").IsZero() || !parseTime(nil).IsZero() {
		t.Error("unreadable timestamps should be zero")
	}
}

// A finetune trained here and then deleted does not come back: its job
// record is what the list merges in, and would show it Ready again.
func TestDeletedLocalModelStaysDeleted(t *testing.T) {
	ctx := testCtx(t)
	acc := newAccount(0)
	acc.add("a", "Alpha", "Ready")
	store := core.NewMemoryStorage()
	if err := store.Put(ctx, core.StoreJobs, "a", map[string]any{"id": "a", "name": "Alpha", "status": "Ready", "started": time.Now()}); err != nil {
		t.Fatal(err)
	}
	svc := New(acc.api(), store, 0)
	if _, err := svc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	list, err := svc.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := Find(list, "a"); ok {
		t.Errorf("the deleted finetune is listed again, status %q", m.Status)
	}
}
