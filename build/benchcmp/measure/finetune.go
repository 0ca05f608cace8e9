package measure

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
)

// Dataset describes a finetune upload: Images noise PNGs of Side x Side
// pixels with a caption each, stored (not deflated) in a ZIP, as the PWA
// sends it: photos do not compress, so noise gives the real byte count.
type Dataset struct {
	Images int
	Side   int
	Seed   uint64
}

// DatasetForBody picks a dataset of n images whose finetune body is close to
// bodyBytes: base64 makes the body 4/3 of the ZIP, and an RGB PNG without
// compression is 3 bytes a pixel.
func DatasetForBody(bodyBytes int64, n int) Dataset {
	perImage := float64(bodyBytes) * 3 / 4 / float64(n)
	return Dataset{Images: n, Side: int(math.Sqrt(perImage / 3)), Seed: 1}
}

// finetuneFields are the POST /v1/finetune fields other than file_data, at
// the cheapest settings the catalog allows, so a benchmark spends little of
// the simulator's credits.
const finetuneFields = `{"finetune_comment":"bench dataset","mode":"character","trigger_word":"TOK",` +
	`"iterations":100,"finetune_type":"lora","lora_rank":16,"priority":"speed","captioning":false,"file_data":"`

// WriteBody writes the whole JSON finetune body to w, streaming the ZIP
// through base64 so a 200 MB body never sits in memory.
func (d Dataset) WriteBody(w io.Writer) error {
	if _, err := io.WriteString(w, finetuneFields); err != nil {
		return fmt.Errorf("write finetune fields: %w", err)
	}
	enc := base64.NewEncoder(base64.StdEncoding, w)
	if err := d.WriteZIP(enc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("finish base64: %w", err)
	}
	if _, err := io.WriteString(w, `"}`); err != nil {
		return fmt.Errorf("close finetune body: %w", err)
	}
	return nil
}

// Body returns the finetune body as bytes, for requests repeated many times.
func (d Dataset) Body() ([]byte, error) {
	var b bytes.Buffer
	b.Grow(d.approxBody())
	if err := d.WriteBody(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Reader streams the finetune body from a goroutine; closing it stops the
// writer.
func (d Dataset) Reader() io.ReadCloser {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(d.WriteBody(pw)) }()
	return pr
}

// approxBody estimates the body size, close enough to size buffers.
func (d Dataset) approxBody() int {
	zipBytes := d.Images * (d.Side*(3*d.Side+1) + 4096)
	return zipBytes*4/3 + len(finetuneFields) + 16
}

// WriteZIP writes the dataset ZIP: img-NN.png with a same-name .txt caption
// containing the trigger word.
func (d Dataset) WriteZIP(w io.Writer) error {
	zw := zip.NewWriter(w)
	img := image.NewRGBA(image.Rect(0, 0, d.Side, d.Side))
	enc := png.Encoder{CompressionLevel: png.NoCompression}
	for i := range d.Images {
		fillNoise(img, d.Seed+uint64(i))
		name := "img-" + strconv.Itoa(i+1)
		f, err := zw.CreateHeader(&zip.FileHeader{Name: name + ".png", Method: zip.Store})
		if err != nil {
			return fmt.Errorf("zip entry %s.png: %w", name, err)
		}
		if err := enc.Encode(f, img); err != nil {
			return fmt.Errorf("encode %s.png: %w", name, err)
		}
		c, err := zw.CreateHeader(&zip.FileHeader{Name: name + ".txt", Method: zip.Store})
		if err != nil {
			return fmt.Errorf("zip entry %s.txt: %w", name, err)
		}
		if _, err := fmt.Fprintf(c, "a photo of TOK, view %d", i+1); err != nil {
			return fmt.Errorf("write caption %s.txt: %w", name, err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("finish zip: %w", err)
	}
	return nil
}

// fillNoise paints img with opaque pseudo-random pixels from seed. Opaque
// makes the PNG encoder write 3 bytes a pixel.
func fillNoise(img *image.RGBA, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := img.Pix
	for i := 0; i+4 <= len(p); i += 4 {
		v := r.Uint32()
		p[i], p[i+1], p[i+2], p[i+3] = byte(v), byte(v>>8), byte(v>>16), 0xff
	}
}
