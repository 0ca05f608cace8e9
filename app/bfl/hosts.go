package bfl

// Finetuning and finetuned generation only work on the regional hosts, and a
// finetune lives in the region that trained it. The host is configuration:
// these are the documented choices, not the only acceptable ones.
const (
	USAPIURL      = "https://api.us1.bfl.ai"
	EUAPIURL      = "https://api.eu1.bfl.ai"
	DefaultAPIURL = USAPIURL
)
