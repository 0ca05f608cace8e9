package sim

// priceTable is what a submit costs, in credits (1 credit = 0.01 USD), keyed
// by endpoint name. Generations cost their entry per request; a finetune costs
// its entry per training iteration, so the default 300 iterations cost 150.
// The figures are round numbers of the simulator's own, in the range BFL
// charges; they are not BFL's price list.
func priceTable() map[string]float64 {
	return map[string]float64{
		"finetune":                     0.5,
		"flux-pro-1.1-ultra-finetuned": 7,
		"flux-pro-finetuned":           6,
		"flux-pro-1.0-fill-finetuned":  6,
		"flux-pro-1.0-depth-finetuned": 6,
		"flux-pro-1.0-canny-finetuned": 6,
	}
}
