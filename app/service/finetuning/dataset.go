// Package finetuning holds the Finetune tab's business logic without any DOM:
// the dataset (images, captions, checks), packing it into the ZIP and JSON
// envelope BFL expects, the training request built from the form, the jobs
// started here and their polling, and the draft that keeps unsent work.
package finetuning

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"unicode"
)

// Format is an image format recognised from the file's first bytes.
type Format string

const (
	FormatJPEG Format = "jpeg"
	FormatPNG  Format = "png"
	FormatWebP Format = "webp"
	// FormatGIF is recognised only so the checks can name it; BFL refuses it.
	FormatGIF Format = "gif"
	// FormatUnknown is anything else; BFL refuses it.
	FormatUnknown Format = ""
)

// Allowed reports whether BFL accepts the format in a training set.
func (f Format) Allowed() bool { return f == FormatJPEG || f == FormatPNG || f == FormatWebP }

// Ext is the file extension the packed ZIP uses for the format.
func (f Format) Ext() string {
	switch f {
	case FormatJPEG:
		return ".jpg"
	case FormatPNG:
		return ".png"
	case FormatWebP:
		return ".webp"
	case FormatGIF:
		return ".gif"
	}
	return ".bin"
}

// MIME is the content type the browser needs to decode and encode the format.
func (f Format) MIME() string {
	switch f {
	case FormatJPEG:
		return "image/jpeg"
	case FormatPNG:
		return "image/png"
	case FormatWebP:
		return "image/webp"
	case FormatGIF:
		return "image/gif"
	}
	return "application/octet-stream"
}

// Sniff tells the format from the content, never from the name: a PNG saved
// as photo.jpg is still a PNG, and a text file renamed .jpg is no image.
func Sniff(data []byte) Format {
	switch {
	case len(data) >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF:
		return FormatJPEG
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return FormatPNG
	case len(data) >= 12 && string(data[0:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return FormatWebP
	case bytes.HasPrefix(data, []byte("GIF87a")) || bytes.HasPrefix(data, []byte("GIF89a")):
		return FormatGIF
	}
	return FormatUnknown
}

// Image is one picture of the dataset. Data holds the bytes that will be sent
// (downscaled when the original was over one megapixel); the original's size
// and dimensions are kept so the panel can show what the downscale saved.
type Image struct {
	Name         string `json:"name"`
	Format       Format `json:"format"`
	Data         []byte `json:"-"`
	OriginalSize int64  `json:"original_size"`
	OriginalW    int    `json:"original_w"`
	OriginalH    int    `json:"original_h"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	Caption      string `json:"caption"`
	// SHA256 is the hex digest of the original bytes; equal digests are
	// exact duplicates whatever the downscale did.
	SHA256 string `json:"sha256"`
}

// SentSize is the number of bytes the image adds to the upload.
func (im Image) SentSize() int64 { return int64(len(im.Data)) }

// Digest returns the hex sha256 of data, the identity of an original file.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Dataset is the set of images and captions being prepared for one finetune.
// Its methods run on one goroutine (the UI's); callers copy it with Clone
// before handing it to background work.
type Dataset struct {
	Images []Image
	// Orphans are captions (.txt files) whose image has not been added,
	// keyed by the caption file's name. They pair as soon as the image arrives.
	Orphans map[string]string
}

// IsCaptionName reports whether name is a caption file (.txt in any case).
func IsCaptionName(name string) bool { return strings.EqualFold(path.Ext(name), ".txt") }

// IsZIPName reports whether name is a ZIP archive (.zip in any case).
func IsZIPName(name string) bool { return strings.EqualFold(path.Ext(name), ".zip") }

// stem is a file's base name without directories and extension; captions and
// images pair on it exactly (case matters for the stem, not the extension).
func stem(name string) string {
	base := path.Base(strings.ReplaceAll(name, "\\", "/"))
	return strings.TrimSuffix(base, path.Ext(base))
}

// AddImage adds im, renaming it when its name is taken so nothing is
// silently replaced, and pairs it with a waiting caption of the same stem.
// It returns the name the image got.
func (d *Dataset) AddImage(im Image) string {
	im.Name = d.uniqueName(path.Base(strings.ReplaceAll(im.Name, "\\", "/")))
	if im.SHA256 == "" {
		im.SHA256 = Digest(im.Data)
	}
	for capName, text := range d.Orphans {
		if stem(capName) == stem(im.Name) {
			if im.Caption == "" {
				im.Caption = text
			}
			delete(d.Orphans, capName)
			break
		}
	}
	d.Images = append(d.Images, im)
	return im.Name
}

func (d *Dataset) uniqueName(name string) string {
	taken := func(n string) bool {
		for _, im := range d.Images {
			if strings.EqualFold(im.Name, n) {
				return true
			}
		}
		return false
	}
	if !taken(name) {
		return name
	}
	ext := path.Ext(name)
	base := strings.TrimSuffix(name, ext)
	for i := 2; ; i++ {
		n := fmt.Sprintf("%s-%d%s", base, i, ext)
		if !taken(n) {
			return n
		}
	}
}

// AddCaption pairs a caption file with the image of the same stem, or keeps
// it as an orphan until that image is added. The text is trimmed because
// editors add trailing newlines that would otherwise reach the model.
func (d *Dataset) AddCaption(name, text string) {
	text = strings.TrimSpace(text)
	s := stem(name)
	for i := range d.Images {
		if stem(d.Images[i].Name) == s {
			d.Images[i].Caption = text
			return
		}
	}
	if d.Orphans == nil {
		d.Orphans = map[string]string{}
	}
	d.Orphans[path.Base(strings.ReplaceAll(name, "\\", "/"))] = text
}

// Remove drops the named image or orphan caption; it reports whether one was found.
func (d *Dataset) Remove(name string) bool {
	for i, im := range d.Images {
		if im.Name == name {
			d.Images = append(d.Images[:i:i], d.Images[i+1:]...)
			return true
		}
	}
	if _, ok := d.Orphans[name]; ok {
		delete(d.Orphans, name)
		return true
	}
	return false
}

// SetCaption replaces the caption of the named image.
func (d *Dataset) SetCaption(name, text string) bool {
	for i := range d.Images {
		if d.Images[i].Name == name {
			d.Images[i].Caption = text
			return true
		}
	}
	return false
}

// InsertTrigger puts the trigger word at the start of every non-empty caption
// that lacks it and returns how many captions changed. Empty captions are left
// alone: with captioning on, BFL writes those itself.
func (d *Dataset) InsertTrigger(trigger string) int {
	trigger = strings.TrimSpace(trigger)
	if trigger == "" {
		return 0
	}
	n := 0
	for i := range d.Images {
		c := strings.TrimSpace(d.Images[i].Caption)
		if c == "" || HasWord(c, trigger) {
			continue
		}
		d.Images[i].Caption = trigger + ", " + c
		n++
	}
	return n
}

// ClearCaptions empties every caption and drops orphan captions.
func (d *Dataset) ClearCaptions() {
	for i := range d.Images {
		d.Images[i].Caption = ""
	}
	d.Orphans = nil
}

// Clone copies the dataset's structure; image bytes are shared because
// nothing modifies them in place.
func (d *Dataset) Clone() *Dataset {
	c := &Dataset{Images: append([]Image(nil), d.Images...)}
	if len(d.Orphans) > 0 {
		c.Orphans = make(map[string]string, len(d.Orphans))
		for k, v := range d.Orphans {
			c.Orphans[k] = v
		}
	}
	return c
}

// Bytes returns the total original and sent sizes.
func (d *Dataset) Bytes() (original, sent int64) {
	for _, im := range d.Images {
		original += im.OriginalSize
		sent += im.SentSize()
	}
	return original, sent
}

// HasWord reports whether word occurs in text as a whole word, so that the
// trigger "TOK" is not found inside "TOKEN".
func HasWord(text, word string) bool {
	if word == "" {
		return false
	}
	for i := 0; ; {
		j := strings.Index(text[i:], word)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(word)
		if boundary(text, start-1) && boundary(text, end) {
			return true
		}
		i = start + 1
	}
}

func boundary(text string, i int) bool {
	if i < 0 || i >= len(text) {
		return true
	}
	r := rune(text[i])
	return !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r >= 0x80)
}
