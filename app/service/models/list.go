package models

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fluxforge/fluxforge/app/bfl"
	"github.com/fluxforge/fluxforge/app/core"
)

// job holds the fields of a training job record (written by the finetuning
// service in core.StoreJobs) that the model list shows. Decoding only these keeps
// this package independent of that service.
type job struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	TriggerWord string     `json:"trigger_word"`
	Mode        string     `json:"mode"`
	Type        string     `json:"finetune_type"`
	Status      bfl.Status `json:"status"`
	Progress    *float64   `json:"progress"`
	Started     time.Time  `json:"started"`
	Error       string     `json:"last_error"`
}

func (s *Service) jobs(ctx context.Context) ([]Model, error) {
	raw, err := s.store.List(ctx, core.StoreJobs)
	if err != nil {
		return nil, fmt.Errorf("read training jobs: %w", err)
	}
	out := make([]Model, 0, len(raw))
	for _, r := range raw {
		var j job
		if err := json.Unmarshal(r, &j); err != nil || j.ID == "" {
			continue // a job not yet started has no finetune id to show
		}
		out = append(out, Model{
			ID: j.ID, Name: j.Name, TriggerWord: j.TriggerWord, Mode: j.Mode, Type: j.Type,
			Status: j.Status, Progress: j.Progress, // stored on the 0..100 scale already
			Created: j.Started, Local: true, Error: j.Error,
		})
	}
	return out, nil
}

// Merge adds to the account's models the local jobs it does not list yet, and
// fills gaps in listed ones from their job (a listed model whose status could
// not be read takes the job's).
func Merge(listed, jobs []Model) []Model {
	out := slices.Clone(listed)
	index := map[string]int{}
	for i, m := range out {
		index[m.ID] = i
	}
	for _, j := range jobs {
		i, ok := index[j.ID]
		if !ok {
			out = append(out, j)
			continue
		}
		m := &out[i]
		m.Local = true
		if m.Status == "" {
			m.Status, m.Progress = j.Status, j.Progress
		}
		m.Name = cmp.Or(m.Name, j.Name)
		m.TriggerWord = cmp.Or(m.TriggerWord, j.TriggerWord)
		if m.Created.IsZero() {
			m.Created = j.Created
		}
	}
	SortBy(out, ColumnCreated, true)
	return out
}

// Column is a sortable column of the model table.
type Column string

// The table's columns, in display order.
const (
	ColumnName         Column = "name"
	ColumnTriggerWord  Column = "trigger_word"
	ColumnMode         Column = "mode"
	ColumnType         Column = "type"
	ColumnRank         Column = "rank"
	ColumnIterations   Column = "iterations"
	ColumnLearningRate Column = "learning_rate"
	ColumnPriority     Column = "priority"
	ColumnStatus       Column = "status"
	ColumnCreated      Column = "created"
)

// Columns lists the columns in display order with their headings.
var Columns = []struct {
	Column Column
	Label  string
}{
	{ColumnName, "Name"}, {ColumnTriggerWord, "Trigger word"}, {ColumnMode, "Mode"}, {ColumnType, "Type"},
	{ColumnRank, "Rank"}, {ColumnIterations, "Iterations"}, {ColumnLearningRate, "Learning rate"},
	{ColumnPriority, "Priority"}, {ColumnStatus, "Status"}, {ColumnCreated, "Created"},
}

func compareBy(c Column) func(a, b Model) int {
	switch c {
	case ColumnTriggerWord:
		return func(a, b Model) int {
			return strings.Compare(strings.ToLower(a.TriggerWord), strings.ToLower(b.TriggerWord))
		}
	case ColumnMode:
		return func(a, b Model) int { return strings.Compare(a.Mode, b.Mode) }
	case ColumnType:
		return func(a, b Model) int { return strings.Compare(a.Type, b.Type) }
	case ColumnRank:
		return func(a, b Model) int { return cmp.Compare(a.Rank, b.Rank) }
	case ColumnIterations:
		return func(a, b Model) int { return cmp.Compare(a.Iterations, b.Iterations) }
	case ColumnLearningRate:
		return func(a, b Model) int { return cmp.Compare(lr(a), lr(b)) }
	case ColumnPriority:
		return func(a, b Model) int { return strings.Compare(a.Priority, b.Priority) }
	case ColumnStatus:
		return func(a, b Model) int { return strings.Compare(string(a.Status), string(b.Status)) }
	case ColumnCreated:
		return func(a, b Model) int { return a.Created.Compare(b.Created) }
	}
	return func(a, b Model) int { return strings.Compare(strings.ToLower(a.label()), strings.ToLower(b.label())) }
}

func lr(m Model) float64 {
	if m.LearningRate == nil {
		return -1 // unset sorts before any value
	}
	return *m.LearningRate
}

// SortBy sorts in place by a column; ties keep id order so the table never jumps.
func SortBy(ms []Model, c Column, desc bool) {
	by := compareBy(c)
	slices.SortStableFunc(ms, func(a, b Model) int {
		r := by(a, b)
		if desc {
			r = -r
		}
		return cmp.Or(r, strings.Compare(a.ID, b.ID))
	})
}

// Search keeps the models whose name, trigger word, id, mode, type or status
// contains every word of q, ignoring case.
func Search(ms []Model, q string) []Model {
	words := strings.Fields(strings.ToLower(q))
	if len(words) == 0 {
		return ms
	}
	out := []Model{}
	for _, m := range ms {
		hay := strings.ToLower(strings.Join([]string{m.Name, m.TriggerWord, m.ID, m.Mode, m.Type, string(m.Status)}, " "))
		if !slices.ContainsFunc(words, func(w string) bool { return !strings.Contains(hay, w) }) {
			out = append(out, m)
		}
	}
	return out
}

// Find returns the model with the id.
func Find(ms []Model, id string) (Model, bool) {
	i := slices.IndexFunc(ms, func(m Model) bool { return m.ID == id })
	if i < 0 {
		return Model{}, false
	}
	return ms[i], true
}
