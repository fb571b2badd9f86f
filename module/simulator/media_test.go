package simulator

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// payload returns n deterministic bytes.
func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestMPMediaRoundTrip(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	data := payload(300 << 10)
	a := h.upload("/cgi-bin/media/upload", tq(tok, "type", "image"), "media", "photo.png", data)
	expectCode(t, a, 0)
	m := a.json(t)
	if _, has := m["errcode"]; has || m["type"] != "image" {
		t.Fatalf("MP upload answer: %s", a.body)
	}
	num(t, m["created_at"]) // a number on MP
	id := m["media_id"].(string)

	for _, method := range []string{http.MethodGet, http.MethodPost} {
		got := h.do(h.request(method, "/cgi-bin/media/get", tq(tok, "media_id", id), "", nil))
		if got.status != 200 || !bytes.Equal(got.body, data) {
			t.Fatalf("%s media/get: status %d, %d bytes, identical=%v", method, got.status, len(got.body), bytes.Equal(got.body, data))
		}
		if ct := got.header.Get("Content-Type"); ct != "image/jpeg" {
			t.Errorf("Content-Type %q", ct)
		}
		if cd := got.header.Get("Content-Disposition"); cd != `attachment; filename="`+id+`.jpg"` {
			t.Errorf("Content-disposition %q", cd)
		}
	}
	// POST with the media_id in a JSON body, as some SDKs do.
	got := h.post("/cgi-bin/media/get", tq(tok), `{"media_id":"`+id+`"}`)
	if !bytes.Equal(got.body, data) {
		t.Fatal("POST media/get with a JSON body")
	}
	// Unknown ids, other accounts and expired media answer JSON 40007.
	expectMP(t, h.get("/cgi-bin/media/get", tq(tok, "media_id", "nope")), 40007)
	expectMP(t, h.get("/cgi-bin/media/get", tq(h.mpToken2(), "media_id", id)), 40007)
	expectMP(t, h.get("/cgi-bin/media/get", tq(tok)), 41006)
	h.advance(3 * 24 * time.Hour)
	expectMP(t, h.get("/cgi-bin/media/get", tq(h.mpToken(), "media_id", id)), 40007)
}

func TestMPMediaKinds(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	a := h.upload("/cgi-bin/media/upload", tq(tok, "type", "thumb"), "media", "t.jpg", payload(1000))
	m := a.json(t)
	if m["thumb_media_id"] == nil || m["media_id"] != nil || m["type"] != "thumb" {
		t.Errorf("thumb upload answer: %s", a.body)
	}
	voice := payload(5000)
	a = h.upload("/cgi-bin/media/upload", tq(tok, "type", "voice"), "media", "v.mp3", voice)
	got := h.get("/cgi-bin/media/get", tq(tok, "media_id", a.json(t)["media_id"].(string)))
	if !bytes.Equal(got.body, voice) || got.header.Get("Content-Type") != "audio/mpeg" {
		t.Errorf("voice media/get: %s", got.header)
	}
	video := payload(7000)
	a = h.upload("/cgi-bin/media/upload", tq(tok, "type", "video"), "media", "v.mp4", video)
	got = h.get("/cgi-bin/media/get", tq(tok, "media_id", a.json(t)["media_id"].(string)))
	m = got.json(t)
	url, _ := m["video_url"].(string)
	if _, has := m["errcode"]; has || url == "" {
		t.Fatalf("video media/get: %s", got.body)
	}
	raw, err := h.srv.Client().Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(raw.Body)
	raw.Body.Close()
	if !bytes.Equal(body, video) {
		t.Error("video_url does not serve the video")
	}
}

func TestMPMediaUploadErrors(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	cases := []struct {
		name, mtype, field, file string
		size                     int
		want                     int
	}{
		{"image too large", "image", "media", "a.jpg", 10<<20 + 1, 40009},
		{"image at limit", "image", "media", "a.jpg", 10 << 20, 0},
		{"voice too large", "voice", "media", "a.amr", 2<<20 + 1, 40010},
		{"video too large", "video", "media", "a.mp4", 10<<20 + 1, 40011},
		{"thumb too large", "thumb", "media", "a.jpg", 64<<10 + 1, 40012},
		{"thumb at limit", "thumb", "media", "a.jpg", 64 << 10, 0},
		{"empty file", "image", "media", "a.jpg", 0, 40006},
		{"wrong field", "image", "file", "a.jpg", 10, 41005},
		{"wrong extension", "image", "media", "a.exe", 10, 40005},
		{"no extension", "voice", "media", "voice", 10, 40005},
		{"bad type", "pdf", "media", "a.pdf", 10, 40004},
		{"no type", "", "media", "a.jpg", 10, 40004},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			query := tq(tok)
			if c.mtype != "" {
				query.Set("type", c.mtype)
			}
			expectCode(t, h.upload("/cgi-bin/media/upload", query, c.field, c.file, payload(c.size)), c.want)
		})
	}
	// Not multipart at all.
	expectMP(t, h.post("/cgi-bin/media/upload", tq(tok, "type", "image"), `{"media":"x"}`), 41005)
	a := h.do(h.request(http.MethodPost, "/cgi-bin/media/upload", tq(tok, "type", "image"), "multipart/form-data; boundary=zzz", []byte("--zzz\r\nbroken")))
	expectMP(t, a, 41005)
}

func TestUploadBodyIsReadWithALimit(t *testing.T) {
	h := start(t)
	tok, _ := h.wecomToken(appSecret1)
	// A body far over every limit is refused without being read to its end.
	total := int64(uploadMaxBody) * 4
	ct, head := multipartBody(t, "media", "big.bin", nil)
	req := h.request(http.MethodPost, "/cgi-bin/media/upload", tq(tok, "type", "file"), ct, nil)
	req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(head[:len(head)/2]), io.LimitReader(zeros{}, total)))
	req.ContentLength = total
	a := h.do(req)
	expectWeCom(t, a, 40006)
	last := h.sim.Counters().Paths["/cgi-bin/media/upload"].Last
	if !last.BodyTruncated || last.BodyBytes != uploadMaxBody || last.ContentLength != total {
		t.Errorf("last record %+v", last)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestWeComMediaRoundTripAndRange(t *testing.T) {
	h := start(t)
	tok, _ := h.wecomToken(appSecret1)
	data := payload(20 << 20) // the largest WeCom file
	a := h.upload("/cgi-bin/media/upload", tq(tok, "type", "file"), "media", "report.pdf", data)
	expectWeCom(t, a, 0)
	m := a.json(t)
	if _, ok := m["created_at"].(string); !ok {
		t.Fatalf("WeCom created_at is not a string: %s", a.body)
	}
	id := m["media_id"].(string)
	got := h.get("/cgi-bin/media/get", tq(tok, "media_id", id))
	if got.status != 200 || !bytes.Equal(got.body, data) {
		t.Fatalf("media/get: %d, identical=%v", got.status, bytes.Equal(got.body, data))
	}
	if got.header.Get("Content-Type") != "application/pdf" || got.header.Get("Content-Disposition") != `attachment; filename="report.pdf"` {
		t.Errorf("headers %v", got.header)
	}
	if got.header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("Accept-Ranges %q", got.header.Get("Accept-Ranges"))
	}

	req := h.request(http.MethodGet, "/cgi-bin/media/get", tq(tok, "media_id", id), "", nil)
	req.Header.Set("Range", "bytes=1000-1999")
	part := h.do(req)
	if part.status != http.StatusPartialContent || !bytes.Equal(part.body, data[1000:2000]) {
		t.Fatalf("Range: status %d, %d bytes", part.status, len(part.body))
	}
	if cr := part.header.Get("Content-Range"); cr != fmt.Sprintf("bytes 1000-1999/%d", len(data)) {
		t.Errorf("Content-Range %q", cr)
	}
	if c := h.sim.Counters().Paths["/cgi-bin/media/get"]; c.OK != 2 || c.Last.Status != 206 {
		t.Errorf("counters %+v / %+v", c, c.Last)
	}
	req.Header.Set("Range", "bytes=999999999-")
	if bad := h.do(req); bad.status != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("unsatisfiable range: %d", bad.status)
	}
	// The other app of the corp cannot read it.
	other, _ := h.wecomToken(appSecret2)
	expectWeCom(t, h.get("/cgi-bin/media/get", tq(other, "media_id", id)), 40007)
}

func TestWeComMediaUploadErrors(t *testing.T) {
	h := start(t)
	tok, _ := h.wecomToken(appSecret1)
	expectWeCom(t, h.upload("/cgi-bin/media/upload", tq(tok, "type", "file"), "media", "a.bin", payload(5)), 40006)
	expectWeCom(t, h.upload("/cgi-bin/media/upload", tq(tok, "type", "image"), "media", "a.gif", payload(50)), 40005)
	expectWeCom(t, h.upload("/cgi-bin/media/upload", tq(tok, "type", "thumb"), "media", "a.jpg", payload(50)), 40004)
	expectWeCom(t, h.upload("/cgi-bin/media/upload", tq(tok, "type", "image"), "media", "a.jpg", payload(10<<20+1)), 40009)
	expectWeCom(t, h.upload("/cgi-bin/media/upload", tq(tok, "type", "file"), "media", "a.bin", payload(20<<20+1)), 40006)
	expectWeCom(t, h.upload("/cgi-bin/media/upload", tq(tok, "type", "file"), "other", "a.bin", payload(50)), 41005)
}

func TestLargeMedia(t *testing.T) {
	h := start(t) // LargeMediaSize 3 MiB + 17
	size := testConfig().LargeMediaSize
	want := sha256.New()
	if _, err := io.Copy(want, LargeMedia(size)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		token string
	}{{"mp", h.mpToken()}, {"wecom", firstOf(h.wecomToken(appSecret1))}} {
		got := h.get("/cgi-bin/media/get", tq(tc.token, "media_id", LargeMediaID))
		if int64(len(got.body)) != size || got.status != 200 {
			t.Fatalf("%s: status %d, %d bytes, want %d", tc.name, got.status, len(got.body), size)
		}
		if sum := sha256.Sum256(got.body); !bytes.Equal(sum[:], want.Sum(nil)) {
			t.Fatalf("%s: large media content differs from LargeMedia", tc.name)
		}
		if got.header.Get("Content-Length") != fmt.Sprint(size) {
			t.Errorf("%s: Content-Length %q", tc.name, got.header.Get("Content-Length"))
		}
		if !bytes.HasPrefix(got.body, []byte{0xFF, 0xD8}) || !bytes.HasSuffix(got.body, []byte{0xFF, 0xD9}) {
			t.Errorf("%s: not framed like a JPEG", tc.name)
		}
	}
	// WeCom Range on the generated media, across the pattern period.
	w, _ := h.wecomToken(appSecret1)
	req := h.request(http.MethodGet, "/cgi-bin/media/get", tq(w, "media_id", LargeMediaID), "", nil)
	req.Header.Set("Range", fmt.Sprintf("bytes=65530-65545,%d-", size-3))
	part := h.do(req)
	if part.status != http.StatusPartialContent || !strings.HasPrefix(part.header.Get("Content-Type"), "multipart/byteranges") {
		t.Fatalf("multi-range: %d %s", part.status, part.header.Get("Content-Type"))
	}
	req.Header.Set("Range", "bytes=65530-65545")
	part = h.do(req)
	expect := make([]byte, 16)
	if _, err := LargeMedia(size).ReadAt(expect, 65530); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(part.body, expect) {
		t.Error("range of the large media differs")
	}
	// A token is still required.
	expectMP(t, h.get("/cgi-bin/media/get", q("media_id", LargeMediaID)), 41001)
}

func TestLargeMediaDefaultSizeIsStreamed(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB download")
	}
	cfg := testConfig()
	cfg.LargeMediaSize = 0 // the default 64 MiB
	sim, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := serve(sim, "GET", "/cgi-bin/token?grant_type=client_credential&appid="+mpApp+"&secret="+mpSecret, "", nil)
	tok := between(rec.Body.String(), `"access_token":"`, `"`)
	counter := &countingWriter{header: http.Header{}}
	sim.ServeHTTP(counter, mustRequest(t, "GET", "/cgi-bin/media/get?access_token="+tok+"&media_id=large"))
	if counter.n != 64<<20 {
		t.Fatalf("streamed %d bytes", counter.n)
	}
	if counter.maxWrite > 1<<20 {
		t.Errorf("a single write of %d bytes: the media is not streamed", counter.maxWrite)
	}
}

// countingWriter counts what is written without keeping it.
type countingWriter struct {
	header   http.Header
	n        int64
	maxWrite int
}

func (w *countingWriter) Header() http.Header { return w.header }
func (w *countingWriter) WriteHeader(int)     {}
func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	w.maxWrite = max(w.maxWrite, len(p))
	return len(p), nil
}

func mustRequest(t testing.TB, method, target string) *http.Request {
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func between(s, from, to string) string {
	_, rest, _ := strings.Cut(s, from)
	v, _, _ := strings.Cut(rest, to)
	return v
}

func firstOf[T any](v T, _ ...any) T { return v }

func TestLargeMediaReaderAt(t *testing.T) {
	for _, size := range []int64{0, 1, 5, 6, 65536, 65537, 200000} {
		all, err := io.ReadAll(LargeMedia(size))
		if err != nil || int64(len(all)) != size {
			t.Fatalf("size %d: %d bytes, %v", size, len(all), err)
		}
		for _, off := range []int64{0, 1, size / 2, size - 1} {
			if off < 0 || off >= size {
				continue
			}
			buf := make([]byte, 7)
			n, _ := LargeMedia(size).ReadAt(buf, off)
			if !bytes.Equal(buf[:n], all[off:off+int64(n)]) {
				t.Fatalf("size %d: ReadAt(%d) differs", size, off)
			}
		}
	}
}

func TestMediaStoreEvictsOldest(t *testing.T) {
	cfg := testConfig()
	cfg.MediaStoreLimit = 250 << 10
	h := newHarness(t, cfg)
	tok := h.mpToken()
	var ids []string
	for range 3 {
		a := h.upload("/cgi-bin/media/upload", tq(tok, "type", "image"), "media", "a.jpg", payload(100<<10))
		ids = append(ids, a.json(t)["media_id"].(string))
	}
	expectMP(t, h.get("/cgi-bin/media/get", tq(tok, "media_id", ids[0])), 40007)
	if got := h.get("/cgi-bin/media/get", tq(tok, "media_id", ids[2])); got.status != 200 || len(got.body) != 100<<10 {
		t.Error("the newest media was evicted")
	}
}
