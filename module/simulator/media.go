package simulator

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// LargeMediaID is a well-known media id that every valid token can fetch from
// /cgi-bin/media/get: Config.LargeMediaSize bytes (default 64 MiB) generated
// on the fly, never held in memory. LargeMedia returns the same bytes.
const LargeMediaID = "large"

// mediaLifetime is how long temporary media can be fetched (3 days on both
// services).
const mediaLifetime = 3 * 24 * time.Hour

// wecomFileLimit is the largest WeCom upload (type=file).
const wecomFileLimit = 20 << 20

// mediaRule is the upload rule of one media type.
type mediaRule struct {
	limit    int64
	sizeCode int             // errcode of an oversized file
	exts     map[string]bool // allowed extensions; nil: any
	minSize  int64
}

func exts(list ...string) map[string]bool {
	m := make(map[string]bool, len(list))
	for _, e := range list {
		m[e] = true
	}
	return m
}

var (
	// mpMediaRules are the temporary media limits of official accounts.
	mpMediaRules = map[string]mediaRule{
		"image": {limit: 10 << 20, sizeCode: wxapi.CodeInvalidImageSize, exts: exts("jpg", "jpeg", "png", "gif", "bmp"), minSize: 1},
		"voice": {limit: 2 << 20, sizeCode: wxapi.CodeInvalidVoiceSize, exts: exts("amr", "mp3"), minSize: 1},
		"video": {limit: 10 << 20, sizeCode: wxapi.CodeInvalidVideoSize, exts: exts("mp4"), minSize: 1},
		"thumb": {limit: 64 << 10, sizeCode: wxapi.CodeInvalidThumbSize, exts: exts("jpg", "jpeg"), minSize: 1},
	}
	// wecomMediaRules are WeCom's limits; every file must be over 5 bytes.
	wecomMediaRules = map[string]mediaRule{
		"image": {limit: 10 << 20, sizeCode: wxapi.CodeInvalidImageSize, exts: exts("jpg", "jpeg", "png"), minSize: 6},
		"voice": {limit: 2 << 20, sizeCode: wxapi.CodeInvalidVoiceSize, exts: exts("amr"), minSize: 6},
		"video": {limit: 10 << 20, sizeCode: wxapi.CodeInvalidVideoSize, exts: exts("mp4"), minSize: 6},
		"file":  {limit: wecomFileLimit, sizeCode: wxapi.CodeInvalidMediaSize, minSize: 6},
	}
)

// mediaItem is one uploaded temporary media.
type mediaItem struct {
	id       string
	owner    *account
	mtype    string
	filename string
	data     []byte
	created  int64 // unix nanoseconds
}

// mediaStore keeps uploaded media in memory, the oldest forgotten first once
// the total passes the limit.
type mediaStore struct {
	mu    sync.RWMutex
	items map[string]*mediaItem
	order []string
	bytes int64
	limit int64
}

func newMediaStore(limit int64) *mediaStore {
	return &mediaStore{items: make(map[string]*mediaItem), limit: limit}
}

func (ms *mediaStore) setLimit(limit int64) {
	ms.mu.Lock()
	ms.limit = limit
	ms.evict(0)
	ms.mu.Unlock()
}

func (ms *mediaStore) put(m *mediaItem) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	ms.evict(int64(len(m.data)))
	ms.items[m.id] = m
	ms.order = append(ms.order, m.id)
	ms.bytes += int64(len(m.data))
}

// evict forgets the oldest media until room more bytes fit. The caller holds
// ms.mu.
func (ms *mediaStore) evict(room int64) {
	for len(ms.order) > 0 && ms.bytes+room > ms.limit {
		old := ms.items[ms.order[0]]
		delete(ms.items, ms.order[0])
		ms.order = ms.order[1:]
		ms.bytes -= int64(len(old.data))
	}
}

func (ms *mediaStore) get(id string) *mediaItem {
	ms.mu.RLock()
	defer ms.mu.RUnlock()
	return ms.items[id]
}

// uploadAnswerMP is the MP upload answer: no errcode, created_at a number,
// and thumb_media_id instead of media_id for thumbs.
type uploadAnswerMP struct {
	Type         string `json:"type"`
	MediaID      string `json:"media_id,omitempty"`
	ThumbMediaID string `json:"thumb_media_id,omitempty"`
	CreatedAt    int64  `json:"created_at"`
}

// uploadAnswerWeCom is the WeCom upload answer: created_at is a string.
type uploadAnswerWeCom struct {
	Errcode   int    `json:"errcode"`
	Errmsg    string `json:"errmsg"`
	Type      string `json:"type"`
	MediaID   string `json:"media_id"`
	CreatedAt string `json:"created_at"`
}

// maxMultipartParts bounds the parts scanned for the media field.
const maxMultipartParts = 16

// handleMediaUpload serves POST /cgi-bin/media/upload?type=: a multipart body
// whose field "media" is the file.
func handleMediaUpload(s *Simulator, c *call) {
	rules := mpMediaRules
	if c.acct.wecom {
		rules = wecomMediaRules
	}
	mtype := c.query("type")
	rule, ok := rules[mtype]
	if !ok {
		c.fail(wxapi.CodeInvalidMediaType)
		return
	}
	if c.bodyTruncated {
		c.fail(rule.sizeCode)
		return
	}
	data, filename, code := mediaPart(c.r.Header.Get("Content-Type"), c.body, rule)
	if code != wxapi.CodeOK {
		c.fail(code)
		return
	}
	item := &mediaItem{owner: c.acct, mtype: mtype, filename: filename, data: data, created: c.nowNs}
	if c.acct.wecom {
		item.id = "3" + randomString("", 59)
	} else {
		item.id = randomString("", 64)
	}
	s.media.put(item)
	if c.acct.wecom {
		c.ok(uploadAnswerWeCom{Type: mtype, MediaID: item.id, CreatedAt: strconv.FormatInt(c.now.Unix(), 10)})
		return
	}
	answer := uploadAnswerMP{Type: mtype, MediaID: item.id, CreatedAt: c.now.Unix()}
	if mtype == "thumb" {
		answer.MediaID, answer.ThumbMediaID = "", item.id
	}
	c.ok(answer)
}

// mediaPart finds the "media" field of a multipart body and checks it
// against rule. It reads at most rule.limit+1 bytes of the part.
func mediaPart(contentType string, body []byte, rule mediaRule) (data []byte, filename string, code int) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return nil, "", wxapi.CodeMediaMissing
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for range maxMultipartParts {
		part, err := mr.NextRawPart()
		if err != nil {
			return nil, "", wxapi.CodeMediaMissing
		}
		if part.FormName() != "media" {
			continue
		}
		filename = part.FileName()
		ext := strings.ToLower(strings.TrimPrefix(path.Ext(filename), "."))
		if filename == "" || (rule.exts != nil && !rule.exts[ext]) {
			return nil, "", wxapi.CodeInvalidFileType
		}
		data, err = io.ReadAll(io.LimitReader(part, rule.limit+1))
		switch {
		case err != nil:
			return nil, "", wxapi.CodeMediaMissing
		case int64(len(data)) > rule.limit:
			return nil, "", rule.sizeCode
		case int64(len(data)) < rule.minSize:
			return nil, "", wxapi.CodeInvalidMediaSize
		}
		return data, filename, wxapi.CodeOK
	}
	return nil, "", wxapi.CodeMediaMissing
}

// handleMediaGet serves GET or POST /cgi-bin/media/get?media_id=: the bytes
// with attachment headers, or JSON 40007 for an unknown id. MP video answers
// JSON {"video_url"}; WeCom supports Range requests.
func handleMediaGet(s *Simulator, c *call) {
	id := c.query("media_id")
	if id == "" && c.r.Method == http.MethodPost && len(c.body) > 0 {
		var req struct {
			MediaID string `json:"media_id"`
		}
		if json.Unmarshal(c.body, &req) == nil {
			id = req.MediaID
		}
	}
	if id == "" {
		c.fail(wxapi.CodeMediaIDMissing)
		return
	}
	if id == LargeMediaID {
		size := c.set.cfg.LargeMediaSize
		c.serveMedia(LargeMedia(size), size, "image/jpeg", LargeMediaID+".jpg")
		return
	}
	m := s.media.get(id)
	if m == nil || m.owner != c.acct || c.nowNs-m.created >= int64(mediaLifetime) {
		c.fail(wxapi.CodeInvalidMediaID)
		return
	}
	content := bytes.NewReader(m.data)
	if c.acct.wecom {
		ct := mime.TypeByExtension(path.Ext(m.filename))
		if ct == "" {
			ct = "application/octet-stream"
		}
		c.serveMedia(content, int64(len(m.data)), ct, m.filename)
		return
	}
	switch m.mtype {
	case "video":
		u := url.URL{Scheme: "http", Host: c.r.Host, Path: c.set.cfg.ControlPrefix + "/media/" + m.id}
		c.ok(struct {
			VideoURL string `json:"video_url"`
		}{u.String()})
	case "voice":
		ext := strings.ToLower(path.Ext(m.filename))
		ct := "audio/amr"
		if ext == ".mp3" {
			ct = "audio/mpeg"
		}
		c.serveMedia(content, int64(len(m.data)), ct, m.id+ext)
	default:
		c.serveMedia(content, int64(len(m.data)), "image/jpeg", m.id+".jpg")
	}
}

// serveMedia answers a media download. WeCom answers honour Range (206 with
// Content-Range); MP answers are always the whole body.
func (c *call) serveMedia(content io.ReadSeeker, size int64, contentType, filename string) {
	h := c.w.Header()
	h["Content-Type"] = []string{contentType}
	// The real service spells the header "Content-disposition".
	h["Content-disposition"] = []string{`attachment; filename="` + safeFilename(filename) + `"`}
	if c.wecom {
		sw := &statusWriter{ResponseWriter: c.w, status: http.StatusOK}
		http.ServeContent(sw, c.r, "", time.Time{}, content)
		c.status = sw.status
		return
	}
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	c.status = http.StatusOK
	c.w.WriteHeader(http.StatusOK)
	if c.r.Method != http.MethodHead {
		_, _ = io.Copy(c.w, content)
	}
}

// safeFilename keeps a filename from breaking out of its header quotes.
func safeFilename(name string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == '"' || r == '\\' || r == 0x7f {
			return '_'
		}
		return r
	}, name)
}

// statusWriter remembers the status written through it.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// formValues parses an application/x-www-form-urlencoded body, or returns
// nil.
func formValues(c *call) url.Values {
	mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" || c.bodyTruncated {
		return nil
	}
	v, err := url.ParseQuery(string(c.body))
	if err != nil {
		return nil
	}
	return v
}

// LargeMedia returns the content the simulator serves for LargeMediaID when
// configured with the given size: a JPEG start-of-image marker, bytes
// derived deterministically from SHA-256, and an end-of-image marker. Tests
// can hash it to check a download.
func LargeMedia(size int64) *io.SectionReader {
	return io.NewSectionReader(largeContent{size: size}, 0, size)
}

// largePatternSize is the period of the generated content.
const largePatternSize = 64 << 10

// largePattern is the repeated block of the large media.
var largePattern = sync.OnceValue(func() []byte {
	p := make([]byte, 0, largePatternSize)
	var seed [8]byte
	for i := uint64(0); len(p) < largePatternSize; i++ {
		binary.BigEndian.PutUint64(seed[:], i)
		sum := sha256.Sum256(append([]byte("caddy-wechat simulator large media "), seed[:]...))
		p = append(p, sum[:]...)
	}
	return p
})

var (
	jpegStart = []byte{0xFF, 0xD8, 0xFF, 0xE0}
	jpegEnd   = []byte{0xFF, 0xD9}
)

// largeContent generates the large media on demand.
type largeContent struct{ size int64 }

func (g largeContent) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if off >= g.size {
		return 0, io.EOF
	}
	n := len(p)
	if rest := g.size - off; int64(n) > rest {
		n = int(rest)
	}
	pattern := largePattern()
	for done := 0; done < n; {
		at := int((off + int64(done)) % largePatternSize)
		done += copy(p[done:n], pattern[at:])
	}
	overlay := func(marker []byte, at int64) {
		for i, b := range marker {
			if pos := at + int64(i) - off; pos >= 0 && pos < int64(n) {
				p[pos] = b
			}
		}
	}
	if g.size >= int64(len(jpegStart)+len(jpegEnd)) {
		overlay(jpegStart, 0)
		overlay(jpegEnd, g.size-int64(len(jpegEnd)))
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
