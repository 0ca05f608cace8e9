// Package sim is an in-memory simulation of Black Forest Labs' API for
// finetuning and finetuned generation, so the product runs and is tested end
// to end without a key. The proxy embeds it through Transport when no
// BFL_API_KEY is set; proxy/cmd/bflsim serves it on its own.
//
// It speaks the API as the catalog in app/bfl describes it: the same paths,
// methods, JSON shapes and status strings, FastAPI-shaped 422 answers from
// the catalog's validation, 403 {"detail": "Not authenticated - Invalid
// Authentication"} for a wrong x-key when Config.Key is set, 404 {"detail":
// "Not Found"} for an unknown path and 405 for a wrong method.
//
// # Tasks
//
// A finetune checks its ZIP (1 to 20 JPG, PNG or WebP images by content,
// same-name .txt captions; 422 on file_data otherwise), answers
// {"id", "polling_url"} with a UUID, and is Pending with rising progress (a
// 0–1 fraction) for TrainDuration, then Ready with {"finetune_id": id}.
// A generation answers {"id", "polling_url", "cost", "input_mp",
// "output_mp"}, is Pending for GenerateDuration, then Ready with a sample
// URL under DeliveryBase plus prompt, seed (random when none was sent),
// start_time, end_time and duration. With webhook_url the answer is
// {"id", "status", "webhook_url"}; the simulator never calls the hook.
//
// Generating with an unknown finetune_id answers 404 {"detail": "Finetune not
// found: <id>"}, as finetune_details and delete_finetune do; with a finetune
// that is still training, or that ended without Ready, it answers 422 on
// finetune_id with a message saying so. Nothing is charged then.
//
// The sample is a real image drawn from the prompt and the seed (the same
// inputs give the same bytes) with the prompt written on it: width and
// height where the endpoint takes them, the aspect ratio at about one
// megapixel for ultra (exact ratio), the input image's size for fill, depth
// and canny. output_format png is PNG; webp is also answered as PNG (Go
// cannot encode webp; the file name and Content-Type say png); anything
// else is JPEG. A sample lives SampleTTL from the moment its task finished;
// then /delivery/<file> answers 404 with a small XML body. A sweeper drops
// expired samples and, after twice SampleTTL, the image tasks themselves
// (get_result then says "Task not found").
//
// Memory stays bounded under any load. A sample is kept as its recipe
// (prompt, seed, size, format: a few hundred bytes) and drawn again when
// fetched; the most recently fetched pictures, up to 8 MB, are cached, and
// at most one picture per processor is drawn at a time. At
// most 20,000 image tasks are remembered: past that the oldest finished ones
// are forgotten early, with their samples.
//
// More than MaxActive Pending tasks answer 429 with Retry-After. Each submit
// is charged at once by the price table in prices.go; a balance below the
// price answers 402. Credits are never refunded, whatever the outcome.
//
// # Fault markers
//
// Put a marker in a generation's prompt or a finetune's finetune_comment. An
// unknown marker is refused with 422 on that field, so typos show.
//
//	| Marker                    | Effect                                                           |
//	|---------------------------|------------------------------------------------------------------|
//	| [sim:error]               | the task ends Error, details {"error": "..."}                    |
//	| [sim:request-moderated]   | the task is Request Moderated at once, details                   |
//	|                           | {"Moderation Reasons": ["..."]}                                  |
//	| [sim:content-moderated]   | the task ends Content Moderated, with Moderation Reasons         |
//	| [sim:500]                 | the submit answers HTTP 500; nothing is created or charged       |
//	| [sim:429]                 | the submit answers 429 with Retry-After: 1                       |
//	| [sim:422=<field>]         | the submit answers 422 naming <field>                            |
//	| [sim:slow=2s]             | the submit answers after the delay ("2s", "1.5", at most 5m);    |
//	|                           | a client that gives up first leaves nothing created              |
//	| [sim:expire]              | the sample's link is dead as soon as the task is Ready           |
//
// Markers combine: [sim:slow=3s][sim:error] waits, accepts, then fails.
package sim
