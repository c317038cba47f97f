package messaging

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"
)

// imageSize reads widths and heights from the headers of PNG, JPEG, GIF and the
// three kinds of WebP, and nothing from other bytes.
func TestImageSize(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 321, 123))
	img.Set(1, 1, color.White)
	enc := func(f func(*bytes.Buffer) error) []byte {
		var b bytes.Buffer
		if err := f(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	pal := image.NewPaletted(image.Rect(0, 0, 321, 123), color.Palette{color.Black, color.White})
	webp := func(chunk string, payload []byte) []byte {
		b := append([]byte("RIFF\x00\x00\x00\x00WEBP"+chunk), 0, 0, 0, 0)
		return append(b, payload...)
	}
	vp8 := []byte{0x30, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0, 0, 0, 0}
	binary.LittleEndian.PutUint16(vp8[6:], 321)
	binary.LittleEndian.PutUint16(vp8[8:], 123)
	vp8l := []byte{0x2f, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(vp8l[1:], uint32(321-1)|uint32(123-1)<<14)
	vp8x := []byte{0, 0, 0, 0, 320 & 0xff, 320 >> 8, 0, 122, 0, 0} // flags, then width-1 and height-1 in 24 bits
	for _, c := range []struct {
		name string
		data []byte
		ok   bool
	}{
		{"png", enc(func(b *bytes.Buffer) error { return png.Encode(b, img) }), true},
		{"jpeg", enc(func(b *bytes.Buffer) error { return jpeg.Encode(b, img, nil) }), true},
		{"gif", enc(func(b *bytes.Buffer) error { return gif.Encode(b, pal, nil) }), true},
		{"webp lossy", webp("VP8 ", vp8), true},
		{"webp lossless", webp("VP8L", vp8l), true},
		{"webp extended", webp("VP8X", vp8x), true},
		{"webp with a bad start code", webp("VP8 ", append([]byte{0x30, 0x01, 0x00, 0x00}, vp8[4:]...)), false},
		{"text", []byte("hello, not an image at all, long enough to look at"), false},
		{"empty", nil, false},
	} {
		w, h, ok := imageSize(c.data)
		if ok != c.ok || (ok && (w != 321 || h != 123)) {
			t.Errorf("imageSize(%s) = %d×%d, %v; want 321×123 %v", c.name, w, h, ok, c.ok)
		}
	}
}

func TestSafeFilename(t *testing.T) {
	for in, want := range map[string]string{
		"cat.png":            "cat.png",
		"my file (1).txt":    "my_file__1_.txt",
		"../../etc/passwd":   "passwd",
		`C:\Users\me\a.doc`:  "a.doc",
		".hidden":            "hidden",
		"":                   "unknown",
		"日本.txt":             "__.txt",
		"a\r\nb.txt":         "a__b.txt",
		"quote\"name\".html": "quote_name_.html",
	} {
		if got := safeFilename(in); got != want {
			t.Errorf("safeFilename(%q) = %q; want %q", in, got, want)
		}
	}
}
