package finetuning

import (
	"fmt"
	"sort"
	"strings"
)

// Level says whether a check blocks the upload (error) or only advises (warning).
type Level string

const (
	LevelError   Level = "error"
	LevelWarning Level = "warning"
)

// Dataset limits from BFL's finetuning guide.
const (
	MaxImages         = 20
	RecommendedImages = 5
)

// Check is one finding about the dataset, in words the user can act on.
type Check struct {
	Level   Level
	Message string
	// Files names the images or caption files concerned, if any.
	Files []string
}

// Checks runs every dataset rule and returns the findings, errors first.
// An empty result means the dataset is ready to send.
func (d *Dataset) Checks(trigger string) []Check {
	var out []Check
	n := len(d.Images)
	switch {
	case n == 0:
		out = append(out, Check{Level: LevelError, Message: "Add at least one image: a finetune needs 1 to 20."})
	case n > MaxImages:
		out = append(out, Check{Level: LevelError, Message: fmt.Sprintf(
			"%d images: BFL accepts at most %d, remove %d.", n, MaxImages, n-MaxImages)})
	case n < RecommendedImages:
		out = append(out, Check{Level: LevelWarning, Message: fmt.Sprintf(
			"Only %d image%s: %d or more give the model enough to learn from.", n, plural(n), RecommendedImages)})
	}

	var badFormat []string
	for _, im := range d.Images {
		if !im.Format.Allowed() {
			badFormat = append(badFormat, im.Name)
		}
	}
	if len(badFormat) > 0 {
		out = append(out, Check{Level: LevelError, Files: badFormat, Message: fmt.Sprintf(
			"Not a JPG, PNG or WebP image (judged by content, not name): %s. Remove %s.",
			list(badFormat), them(len(badFormat)))})
	}

	byDigest := map[string][]string{}
	var digests []string
	for _, im := range d.Images {
		if _, seen := byDigest[im.SHA256]; !seen {
			digests = append(digests, im.SHA256)
		}
		byDigest[im.SHA256] = append(byDigest[im.SHA256], im.Name)
	}
	for _, dg := range digests {
		if names := byDigest[dg]; len(names) > 1 {
			out = append(out, Check{Level: LevelError, Files: names, Message: fmt.Sprintf(
				"Exact duplicates: %s are the same file. Keep one.", list(names))})
		}
	}

	if t := strings.TrimSpace(trigger); t != "" {
		var lacking []string
		for _, im := range d.Images {
			if c := strings.TrimSpace(im.Caption); c != "" && !HasWord(c, t) {
				lacking = append(lacking, im.Name)
			}
		}
		if len(lacking) > 0 {
			out = append(out, Check{Level: LevelWarning, Files: lacking, Message: fmt.Sprintf(
				"Caption%s without the trigger word %q: %s. Use \"Add trigger word\" or edit %s.",
				plural(len(lacking)), t, list(lacking), them(len(lacking)))})
		}
	}

	if len(d.Orphans) > 0 {
		names := make([]string, 0, len(d.Orphans))
		for name := range d.Orphans {
			names = append(names, name)
		}
		sort.Strings(names)
		out = append(out, Check{Level: LevelWarning, Files: names, Message: fmt.Sprintf(
			"Caption%s with no image of the same name: %s. %s not be sent.",
			plural(len(names)), list(names), map[bool]string{true: "It will", false: "They will"}[len(names) == 1])})
	}

	sort.SliceStable(out, func(i, j int) bool { return out[i].Level == LevelError && out[j].Level != LevelError })
	return out
}

// Blocking returns the error-level checks: any of them stops the upload.
func Blocking(checks []Check) []Check {
	var out []Check
	for _, c := range checks {
		if c.Level == LevelError {
			out = append(out, c)
		}
	}
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func them(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// list names files for a message, shortening long lists so messages stay readable.
func list(names []string) string {
	const show = 5
	if len(names) <= show {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:show], ", "), len(names)-show)
}
