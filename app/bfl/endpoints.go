package bfl

// Catalog returns every endpoint the product uses, legacy ones included, in a
// stable order: training, generators (ultra first), then result, management
// and account calls. Each call builds fresh values, so callers may modify what
// they get without affecting anyone else.
func Catalog() []Endpoint {
	return []Endpoint{
		{
			Name: "finetune", Method: "POST", Kind: KindFinetune, Legacy: true,
			Summary: "Train a new finetune from a ZIP of images.",
			Fields: []Field{
				{Name: "file_data", Type: String, Format: FormatBase64ZIP, Required: true,
					Hint: "Your training images (and optional .txt captions) as one ZIP."},
				{Name: "finetune_comment", Type: String, Required: true,
					Hint: "A name you will recognise the model by later."},
				{Name: "trigger_word", Type: String, Default: "TOK",
					Hint: "A made-up word that summons your subject in prompts."},
				{Name: "mode", Type: String, Required: true, Enum: []any{"general", "character", "style", "product"},
					Hint: "What the images teach: a person, a look, an object, or anything."},
				{Name: "iterations", Type: Integer, Min: num(100), Max: num(1000), Default: 300.0,
					Hint: "Training steps: more learns finer detail but costs more."},
				{Name: "learning_rate", Type: Number, Nullable: true, Min: num(0.000001), Max: num(0.005),
					Hint: "How boldly each step changes the model; leave empty for the usual value."},
				{Name: "captioning", Type: Boolean, Default: true,
					Hint: "Let BFL write captions for images that have none."},
				{Name: "priority", Type: String, Enum: []any{"speed", "quality", "high_res_only"}, Default: "quality",
					Hint: "Trade training time against fidelity, or train for large outputs only."},
				{Name: "finetune_type", Type: String, Enum: []any{"lora", "full"}, Default: "full",
					Hint: "LoRA is a light add-on; full retrains more of the model."},
				{Name: "lora_rank", Type: Integer, Enum: []any{16.0, 32.0}, Default: 32.0,
					Hint: "LoRA capacity: 32 holds more detail, 16 stays more flexible."},
				webhookURL(), webhookSecret(),
			},
		},
		{
			Name: "flux-pro-1.1-ultra-finetuned", Method: "POST", Kind: KindGenerate,
			Summary: "FLUX1.1 [pro] ultra with your finetune: large images at a chosen aspect ratio.",
			Fields: []Field{
				finetuneID(), finetuneStrength(1.2),
				{Name: "prompt", Type: String, Nullable: true, Default: "",
					Hint: "Describe the picture; include your trigger word."},
				seed(true),
				{Name: "aspect_ratio", Type: String, Format: FormatAspectRatio, Default: "16:9",
					Hint: "Width:height of the picture, from 21:9 to 9:21."},
				safetyTolerance(),
				outputFormat(true, "jpeg", "png", "webp"),
				imagePrompt(),
				{Name: "image_prompt_strength", Type: Number, Min: num(0), Max: num(1), Default: 0.1,
					Hint: "How much the image prompt steers the result, 0 to 1."},
				promptUpsampling(),
				webhookURL(), webhookSecret(),
			},
		},
		{
			Name: "flux-pro-1.0-fill-finetuned", Method: "POST", Kind: KindGenerate,
			Summary: "FLUX.1 Fill [pro] with your finetune: repaint the masked part of an image.",
			Fields: []Field{
				finetuneID(), finetuneStrength(1.1),
				{Name: "image", Type: String, Format: FormatBase64Image, Required: true,
					Hint: "The picture to edit."},
				{Name: "mask", Type: String, Format: FormatBase64Image, Nullable: true,
					Hint: "White marks what to repaint, black what to keep."},
				{Name: "prompt", Type: String, Default: "",
					Hint: "Describe what should appear in the repainted area."},
				steps(15, 50),
				promptUpsampling(),
				seed(true),
				guidance(1.5, 100, 60),
				outputFormat(true, "jpeg", "png", "webp"),
				safetyTolerance(),
				webhookURL(), webhookSecret(),
			},
		},
		{
			Name: "flux-pro-finetuned", Method: "POST", Kind: KindGenerate, Legacy: true,
			Summary: "FLUX.1 [pro] with your finetune, at an exact width and height.",
			Fields: []Field{
				finetuneID(), finetuneStrength(1.1),
				{Name: "steps", Type: Integer, Min: num(1), Max: num(50), Default: 40.0,
					Hint: "Denoising passes: more is slower and usually cleaner."},
				guidance(1.5, 5, 2.5),
				{Name: "prompt", Type: String, Default: "",
					Hint: "Describe the picture; include your trigger word."},
				imagePrompt(),
				dimension("width", 1024, "Picture width in pixels, a multiple of 32."),
				dimension("height", 768, "Picture height in pixels, a multiple of 32."),
				promptUpsampling(),
				seed(false),
				safetyTolerance(),
				outputFormat(false, "jpeg", "png"),
				webhookURL(), webhookSecret(),
			},
		},
		controlEndpoint("flux-pro-1.0-depth-finetuned",
			"FLUX.1 Depth [pro] with your finetune: keep the depth layout of a control image.",
			"A picture whose depth layout the result follows.", 15),
		controlEndpoint("flux-pro-1.0-canny-finetuned",
			"FLUX.1 Canny [pro] with your finetune: keep the edges of a control image.",
			"A picture whose edges the result follows.", 30,
			Field{Name: "canny_low_threshold", Type: Integer, Nullable: true, Min: num(0), Max: num(500), Default: 50.0,
				Hint: "Edges weaker than this are ignored."},
			Field{Name: "canny_high_threshold", Type: Integer, Nullable: true, Min: num(0), Max: num(500), Default: 200.0,
				Hint: "Edges stronger than this are always kept."},
		),
		{
			Name: "get_result", Method: "GET", Kind: KindResult,
			Summary: "Status, progress and result of a task.",
			Fields:  []Field{{Name: "id", Type: String, Required: true, Hint: "The task id a submit answered."}},
		},
		{
			Name: "my_finetunes", Method: "GET", Kind: KindManage,
			Summary: "The ids of every finetune of the account.",
		},
		{
			Name: "finetune_details", Method: "GET", Kind: KindManage,
			Summary: "The training settings of one finetune.",
			Fields:  []Field{{Name: "finetune_id", Type: String, Required: true, Hint: "The finetune to describe."}},
		},
		{
			Name: "delete_finetune", Method: "POST", Kind: KindManage,
			Summary: "Delete a finetune for good.",
			Fields:  []Field{{Name: "finetune_id", Type: String, Required: true, Hint: "The finetune to delete."}},
		},
		{
			Name: "credits", Method: "GET", Kind: KindAccount,
			Summary: "The account's credit balance (1 credit = 0.01 USD).",
		},
	}
}

// controlEndpoint builds the depth and canny endpoints, which differ only in
// their guidance default and canny's thresholds.
func controlEndpoint(name, summary, controlHint string, guidanceDefault float64, extra ...Field) Endpoint {
	fields := []Field{
		finetuneID(), finetuneStrength(1.1),
		{Name: "prompt", Type: String, Required: true,
			Hint: "Describe the picture; include your trigger word."},
	}
	fields = append(fields, extra...)
	fields = append(fields,
		Field{Name: "control_image", Type: String, Format: FormatBase64Image, Required: true, Hint: controlHint},
		promptUpsampling(),
		seed(true),
		steps(15, 50),
		outputFormat(true, "jpeg", "png"),
		guidance(1, 100, guidanceDefault),
		safetyTolerance(),
		webhookURL(), webhookSecret(),
	)
	return Endpoint{Name: name, Method: "POST", Kind: KindGenerate, Legacy: true, Summary: summary, Fields: fields}
}

func num(v float64) *float64 { return &v }

func finetuneID() Field {
	return Field{Name: "finetune_id", Type: String, Required: true,
		Hint: "Which of your finetuned models paints the picture."}
}

func finetuneStrength(def float64) Field {
	return Field{Name: "finetune_strength", Type: Number, Min: num(0), Max: num(2), Default: def,
		Hint: "How strongly your finetune shows: 0 ignores it, 2 exaggerates it."}
}

func seed(nullable bool) Field {
	return Field{Name: "seed", Type: Integer, Nullable: nullable,
		Hint: "The same seed and settings repeat a picture; empty picks one at random."}
}

func steps(lo, hi float64) Field {
	return Field{Name: "steps", Type: Integer, Min: num(lo), Max: num(hi), Default: hi,
		Hint: "Denoising passes: more is slower and usually cleaner."}
}

func guidance(lo, hi, def float64) Field {
	return Field{Name: "guidance", Type: Number, Min: num(lo), Max: num(hi), Default: def,
		Hint: "How literally the prompt is followed; high values can look harsh."}
}

func dimension(name string, def float64, hint string) Field {
	return Field{Name: name, Type: Integer, Min: num(256), Max: num(1440), MultipleOf: 32, Default: def, Hint: hint}
}

func safetyTolerance() Field {
	return Field{Name: "safety_tolerance", Type: Integer, Min: num(0), Max: num(6), Default: 2.0,
		Hint: "Moderation strictness: 0 is strictest, 6 most permissive."}
}

func outputFormat(nullable bool, formats ...any) Field {
	return Field{Name: "output_format", Type: String, Nullable: nullable, Enum: formats, Default: "jpeg",
		Hint: "File type of the picture: JPEG is small, PNG is lossless."}
}

func imagePrompt() Field {
	return Field{Name: "image_prompt", Type: String, Format: FormatBase64Image, Nullable: true,
		Hint: "An optional picture whose look and layout inspire the result."}
}

func promptUpsampling() Field {
	return Field{Name: "prompt_upsampling", Type: Boolean, Default: false,
		Hint: "Let BFL embellish a short prompt; results vary more."}
}

func webhookURL() Field {
	return Field{Name: "webhook_url", Type: String, Format: FormatURI, Nullable: true, MinLength: 1, MaxLength: 2083,
		Hint: "Optional address BFL calls when the task ends."}
}

func webhookSecret() Field {
	return Field{Name: "webhook_secret", Type: String, Nullable: true,
		Hint: "Optional secret BFL signs its webhook call with."}
}

// Lookup finds an endpoint by Name, e.g. "finetune" or "get_result".
func Lookup(name string) (Endpoint, bool) {
	for _, e := range Catalog() {
		if e.Name == name {
			return e, true
		}
	}
	return Endpoint{}, false
}

// Generators lists the image endpoints in catalog order, ultra first.
// Legacy ones are left out unless asked for, since BFL may have removed them.
func Generators(includeLegacy bool) []Endpoint {
	var out []Endpoint
	for _, e := range Catalog() {
		if e.Kind == KindGenerate && (includeLegacy || !e.Legacy) {
			out = append(out, e)
		}
	}
	return out
}

// EffectiveLearningRate is the rate BFL trains with when learning_rate is
// null: the API's default is null and the real value depends on the type.
func EffectiveLearningRate(finetuneType string) float64 {
	if finetuneType == "lora" {
		return 1e-4
	}
	return 1e-5
}
