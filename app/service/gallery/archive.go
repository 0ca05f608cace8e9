package gallery

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fluxforge/fluxforge/app/core"
)

// The archive format: manifest.json plus one entry per blob. Its name and
// version let an import refuse a ZIP that is not a gallery export.
const (
	manifestName   = "manifest.json"
	archiveFormat  = "fluxforge-gallery"
	archiveVersion = 1
	// Limits for an import, which reads into browser memory: a hostile or broken
	// ZIP must not exhaust it.
	maxEntryBytes    = 64 << 20
	maxManifestBytes = 16 << 20
	maxArchiveBytes  = 2 << 30
)

// Manifest describes an exported gallery.
type Manifest struct {
	Format   string          `json:"format"`
	Version  int             `json:"version"`
	Exported time.Time       `json:"exported"`
	Entries  []ManifestEntry `json:"entries"`
}

// ManifestEntry is one record with the ZIP entries holding its blobs.
type ManifestEntry struct {
	Record Record          `json:"record"`
	Files  map[string]File `json:"files,omitempty"` // blob key -> entry
}

// File is a blob inside the archive.
type File struct {
	Name      string `json:"name"`
	MediaType string `json:"media_type"`
}

// Export writes every record and its images to w as a ZIP and returns how many records it holds.
func (g *Gallery) Export(ctx context.Context, w io.Writer, now time.Time) (int, error) {
	recs, err := g.List(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	zw := zip.NewWriter(w)
	m := Manifest{Format: archiveFormat, Version: archiveVersion, Exported: now.UTC(), Entries: make([]ManifestEntry, 0, len(recs))}
	for _, r := range recs {
		e := ManifestEntry{Record: r, Files: map[string]File{}}
		for i, key := range blobKeys(r) {
			data, mt, err := g.s.GetBlob(ctx, key)
			if errors.Is(err, core.ErrNotFound) {
				continue // exported without it; the record still says what was asked
			}
			if err != nil {
				return 0, fmt.Errorf("export %s: %w", r.ID, err)
			}
			name := fmt.Sprintf("images/%s%s", r.ID, Extension(mt))
			if i > 0 {
				name = fmt.Sprintf("inputs/%s-%d%s", r.ID, i, Extension(mt))
			}
			// Images are already compressed: storing them costs no size and saves CPU in the browser.
			f, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: r.Created})
			if err != nil {
				return 0, fmt.Errorf("export %s: %w", name, err)
			}
			if _, err := f.Write(data); err != nil {
				return 0, fmt.Errorf("export %s: %w", name, err)
			}
			e.Files[key] = File{Name: name, MediaType: mt}
		}
		m.Entries = append(m.Entries, e)
	}
	f, err := zw.Create(manifestName)
	if err != nil {
		return 0, fmt.Errorf("export manifest: %w", err)
	}
	enc := json.NewEncoder(f)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return 0, fmt.Errorf("export manifest: %w", err)
	}
	if err := zw.Close(); err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	return len(recs), nil
}

// blobKeys lists a record's blobs, the result image first.
func blobKeys(r Record) []string {
	keys := []string{}
	if r.HasImage() {
		keys = append(keys, r.Image)
	}
	for _, f := range slices.Sorted(maps.Keys(r.Inputs)) {
		keys = append(keys, r.Inputs[f])
	}
	return keys
}

// ownBlobs reports whether every blob a record names is under its own keys.
func ownBlobs(r Record) bool {
	if r.HasImage() && r.Image != ImageKey(r.ID) {
		return false
	}
	for field, key := range r.Inputs {
		if key != InputKey(r.ID, field) {
			return false
		}
	}
	return true
}

// ImportResult counts what an import did.
type ImportResult struct {
	Added   int
	Skipped int // already in the gallery (same task id)
}

// ImportError says why an archive was refused; nothing is written when it is returned.
type ImportError struct{ Reason string }

func (e *ImportError) Error() string { return "import: " + e.Reason }

// Import reads an archive written by Export. The whole archive is checked before
// anything is written; records already present (by id) are skipped.
func (g *Gallery) Import(ctx context.Context, data []byte) (ImportResult, error) {
	var res ImportResult
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return res, &ImportError{Reason: "the file is not a ZIP archive"}
	}
	files := map[string]*zip.File{}
	var total uint64
	for _, f := range zr.File {
		files[f.Name] = f
		total += f.UncompressedSize64
	}
	if total > maxArchiveBytes {
		return res, &ImportError{Reason: fmt.Sprintf("the archive unpacks to %d bytes, more than the %d allowed", total, maxArchiveBytes)}
	}
	mf, ok := files[manifestName]
	if !ok {
		return res, &ImportError{Reason: "the archive has no manifest.json: it is not a gallery export"}
	}
	raw, err := readEntry(mf, maxManifestBytes)
	if err != nil {
		return res, err
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return res, &ImportError{Reason: "manifest.json is not valid JSON: " + err.Error()}
	}
	if m.Format != archiveFormat || m.Version != archiveVersion {
		return res, &ImportError{Reason: fmt.Sprintf("manifest.json is format %q version %d; this app reads %q version %d", m.Format, m.Version, archiveFormat, archiveVersion)}
	}
	blobs := map[string][]byte{}
	seen := map[string]bool{}
	for i, e := range m.Entries {
		if e.Record.ID == "" || e.Record.Endpoint == "" {
			return res, &ImportError{Reason: fmt.Sprintf("entry %d lacks the record's id or endpoint", i+1)}
		}
		if seen[e.Record.ID] {
			return res, &ImportError{Reason: fmt.Sprintf("record %s appears twice", e.Record.ID)}
		}
		seen[e.Record.ID] = true
		// A record's blobs are stored under keys made from its id; an
		// archive naming others could overwrite another record's image.
		if strings.Contains(e.Record.ID, "/") || !ownBlobs(e.Record) {
			return res, &ImportError{Reason: fmt.Sprintf("record %s names images that are not its own", e.Record.ID)}
		}
		for _, key := range blobKeys(e.Record) {
			file, ok := e.Files[key]
			if !ok {
				continue // exported without this blob
			}
			zf, ok := files[file.Name]
			if !ok {
				return res, &ImportError{Reason: fmt.Sprintf("record %s names %s, which is not in the archive", e.Record.ID, file.Name)}
			}
			b, err := readEntry(zf, maxEntryBytes)
			if err != nil {
				return res, err
			}
			blobs[key] = b
		}
	}
	for _, e := range m.Entries {
		r := e.Record
		if _, err := g.Get(ctx, r.ID); err == nil {
			res.Skipped++
			continue
		} else if !errors.Is(err, core.ErrNotFound) {
			return res, fmt.Errorf("import %s: %w", r.ID, err)
		}
		for _, key := range blobKeys(r) {
			b, ok := blobs[key]
			if !ok {
				continue
			}
			if err := g.s.PutBlob(ctx, key, b, e.Files[key].MediaType); err != nil {
				return res, fmt.Errorf("import %s: %w", r.ID, err)
			}
		}
		if _, ok := blobs[r.Image]; !ok {
			r.Image, r.MediaType = "", ""
		}
		if err := g.Save(ctx, r); err != nil {
			return res, fmt.Errorf("import: %w", err)
		}
		res.Added++
	}
	return res, nil
}

func readEntry(f *zip.File, limit int64) ([]byte, error) {
	if f.UncompressedSize64 > uint64(limit) {
		return nil, &ImportError{Reason: fmt.Sprintf("%s is larger than %d bytes", f.Name, limit)}
	}
	rc, err := f.Open()
	if err != nil {
		return nil, &ImportError{Reason: fmt.Sprintf("%s cannot be read: %v", f.Name, err)}
	}
	defer rc.Close()
	// The header's size can lie; the limited read is what bounds memory.
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, &ImportError{Reason: fmt.Sprintf("%s cannot be read: %v", f.Name, err)}
	}
	if int64(len(b)) > limit {
		return nil, &ImportError{Reason: fmt.Sprintf("%s is larger than %d bytes", f.Name, limit)}
	}
	return b, nil
}
