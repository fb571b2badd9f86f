package simulator

import (
	"bytes"
	"crypto/sha256"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"strings"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// wxaCodeRequest is the body of POST /wxa/getwxacodeunlimit.
type wxaCodeRequest struct {
	Scene      string `json:"scene"`
	Page       string `json:"page"`
	CheckPath  *bool  `json:"check_path"`
	EnvVersion string `json:"env_version"`
	Width      int    `json:"width"`
	AutoColor  bool   `json:"auto_color"`
	LineColor  *struct {
		R, G, B jsonInt
	} `json:"line_color"`
	IsHyaline bool `json:"is_hyaline"`
}

// jsonInt accepts a number or a string of digits (SDKs send line_color
// components either way).
type jsonInt int

func (n *jsonInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' || v > 1<<20 {
			return errBadNumber
		}
		v = v*10 + int(s[i]-'0')
	}
	*n = jsonInt(v)
	return nil
}

type badNumber struct{}

func (badNumber) Error() string { return "not a non-negative integer" }

var errBadNumber error = badNumber{}

// Mini program code limits.
const (
	maxSceneLen = 32
	minWxaWidth = 280
	maxWxaWidth = 1280
	defWxaWidth = 430
	wxaModules  = 29 // cells per side of the generated pattern
)

// isSceneChar reports whether c may appear in a scene: visible ASCII from
// the set the documentation allows.
func isSceneChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("!#$&'()*+,/:;=?@-._~", c) >= 0
}

// handleWxaCodeUnlimit serves POST /wxa/getwxacodeunlimit: a PNG whose
// pattern is derived from scene and page, or a JSON error.
func handleWxaCodeUnlimit(s *Simulator, c *call) {
	var req wxaCodeRequest
	if !c.decodeJSON(&req) {
		return
	}
	if req.Scene == "" || len(req.Scene) > maxSceneLen {
		c.fail(wxapi.CodeInvalidScene)
		return
	}
	for i := 0; i < len(req.Scene); i++ {
		if !isSceneChar(req.Scene[i]) {
			c.fail(wxapi.CodeInvalidScene)
			return
		}
	}
	if strings.HasPrefix(req.Page, "/") || len(req.Page) > 256 {
		c.fail(wxapi.CodeInvalidPage)
		return
	}
	switch req.EnvVersion {
	case "", "release", "trial", "develop":
	default:
		c.fail(wxapi.CodeInvalidArgs)
		return
	}
	width := req.Width
	switch {
	case width == 0:
		width = defWxaWidth
	case width < minWxaWidth:
		width = minWxaWidth
	case width > maxWxaWidth:
		width = maxWxaWidth
	}
	line := color.RGBA{A: 0xff}
	if req.LineColor != nil && !req.AutoColor {
		line = color.RGBA{R: uint8(min(req.LineColor.R, 255)), G: uint8(min(req.LineColor.G, 255)), B: uint8(min(req.LineColor.B, 255)), A: 0xff}
	}
	background := color.RGBA{R: 0xff, G: 0xff, B: 0xff, A: 0xff}
	if req.IsHyaline {
		background = color.RGBA{}
	}
	// WeChat answers a JPEG, and a PNG for a transparent background.
	var buf bytes.Buffer
	img := wxaImage(req.Scene+"\x00"+req.Page, width, line, background)
	contentType, err := "image/jpeg", error(nil)
	if req.IsHyaline {
		contentType = "image/png"
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, img)
	} else {
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90})
	}
	if err != nil {
		c.fail(wxapi.CodeSystemBusy)
		return
	}
	c.code = wxapi.CodeOK
	c.write(200, contentType, buf.Bytes())
}

// wxaImage draws a deterministic round-ish pattern of cells derived from
// seed, like a mini program code.
func wxaImage(seed string, width int, line, background color.RGBA) image.Image {
	bits := make([]byte, 0, wxaModules*wxaModules/8+32)
	for i := byte(0); len(bits)*8 < wxaModules*wxaModules; i++ {
		sum := sha256.Sum256(append([]byte(seed), i))
		bits = append(bits, sum[:]...)
	}
	img := image.NewPaletted(image.Rect(0, 0, width, width), color.Palette{background, line})
	cell := width / wxaModules
	margin := (width - cell*wxaModules) / 2
	center := wxaModules / 2
	for y := range wxaModules {
		for x := range wxaModules {
			dx, dy := x-center, y-center
			if dx*dx+dy*dy > center*center {
				continue // outside the disc
			}
			n := y*wxaModules + x
			if bits[n/8]&(1<<(n%8)) == 0 {
				continue
			}
			for py := margin + y*cell; py < margin+(y+1)*cell; py++ {
				row := img.Pix[py*img.Stride:]
				for px := margin + x*cell; px < margin+(x+1)*cell; px++ {
					row[px] = 1
				}
			}
		}
	}
	return img
}
