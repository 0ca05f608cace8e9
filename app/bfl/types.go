package bfl

import "encoding/json"

// AsyncResponse answers every submit. With a webhook, BFL answers
// {id, status, webhook_url} instead and PollingURL is empty.
type AsyncResponse struct {
	ID         string   `json:"id"`
	PollingURL string   `json:"polling_url,omitempty"`
	Status     Status   `json:"status,omitempty"`
	WebhookURL string   `json:"webhook_url,omitempty"`
	Cost       *float64 `json:"cost,omitempty"` // credits, 2026 API
	InputMP    *float64 `json:"input_mp,omitempty"`
	OutputMP   *float64 `json:"output_mp,omitempty"`
	// FinetuneID is set by the finetune endpoint; read it before ID.
	FinetuneID string `json:"finetune_id,omitempty"`
}

// TaskID returns the finetune id when present, else the task id.
func (a AsyncResponse) TaskID() string {
	if a.FinetuneID != "" {
		return a.FinetuneID
	}
	return a.ID
}

// ResultResponse answers GET /v1/get_result.
type ResultResponse struct {
	ID       string          `json:"id"`
	Status   Status          `json:"status"`
	Result   json.RawMessage `json:"result,omitempty"`
	Progress *float64        `json:"progress"`
	Details  map[string]any  `json:"details,omitempty"`
	Preview  json.RawMessage `json:"preview,omitempty"`
}

// ImageResult is the result of a Ready image task.
type ImageResult struct {
	Sample    string   `json:"sample"`
	Prompt    string   `json:"prompt,omitempty"`
	Seed      *int64   `json:"seed,omitempty"`
	StartTime *float64 `json:"start_time,omitempty"`
	EndTime   *float64 `json:"end_time,omitempty"`
	Duration  *float64 `json:"duration,omitempty"`
}

// FinetuneResult is the result of a Ready training task.
type FinetuneResult struct {
	FinetuneID string `json:"finetune_id"`
}

// MyFinetunes answers GET /v1/my_finetunes.
type MyFinetunes struct {
	Finetunes []string `json:"finetunes"`
}

// FinetuneDetails answers GET /v1/finetune_details. BFL documents the inner
// object as free-form (in practice the training settings and a timestamp), so
// it stays a map and readers pick the keys they know.
type FinetuneDetails struct {
	Details map[string]any `json:"finetune_details"`
}

// DeleteFinetuneResponse answers POST /v1/delete_finetune.
type DeleteFinetuneResponse struct {
	Status            string `json:"status"`
	Message           string `json:"message"`
	DeletedFinetuneID string `json:"deleted_finetune_id"`
	Timestamp         string `json:"timestamp"`
}

// Credits answers GET /v1/credits. One credit is 0.01 USD.
type Credits struct {
	Credits float64 `json:"credits"`
}
