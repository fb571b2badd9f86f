package simulator

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Test accounts.
const (
	mpApp      = "wx0123456789abcdef"
	mpSecret   = "0123456789abcdef0123456789abcdef"
	mpApp2     = "wxfedcba9876543210"
	mpSecret2  = "fedcba9876543210fedcba9876543210"
	corpID     = "ww0123456789abcdef"
	appSecret1 = "wecom-app-secret-one-0123456789abcdef"
	appSecret2 = "wecom-app-secret-two-0123456789abcdef"
)

// testStart is a Saturday 10:00 in Shanghai.
var testStart = time.Date(2025, 3, 1, 10, 0, 0, 0, shanghai)

func testConfig() Config {
	return Config{
		Accounts: []Account{
			{Kind: KindOfficial, AppID: mpApp, Secret: mpSecret},
			{AppID: mpApp2, Secret: mpSecret2},
			{Kind: KindWeCom, AppID: corpID, Secret: appSecret1, AgentID: "1000002"},
			{Kind: KindWeCom, AppID: corpID, Secret: appSecret2, AgentID: "1000003"},
		},
		Frozen:         true,
		Start:          testStart,
		LargeMediaSize: 3<<20 + 17,
	}
}

// harness is a simulator behind a real HTTP server.
type harness struct {
	t   testing.TB
	sim *Simulator
	srv *httptest.Server
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	sim, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &harness{t: t, sim: sim, srv: srv}
}

func start(t testing.TB) *harness { return newHarness(t, testConfig()) }

// answer is one HTTP answer.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a map (numbers as json.Number).
func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("answer is not JSON (%v): %q", err, truncate(a.body))
	}
	return m
}

// errcode returns the errcode of a JSON answer, 0 when absent.
func (a answer) errcode(t testing.TB) int {
	t.Helper()
	m := a.json(t)
	v, ok := m["errcode"]
	if !ok {
		return 0
	}
	n, err := v.(json.Number).Int64()
	if err != nil {
		t.Fatalf("errcode %v is not an integer", v)
	}
	return int(n)
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

func (h *harness) do(req *http.Request) answer {
	h.t.Helper()
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("reading %s: %v", req.URL.Path, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: body}
}

func (h *harness) request(method, path string, query url.Values, contentType string, body []byte) *http.Request {
	h.t.Helper()
	u := h.srv.URL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		h.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

func (h *harness) get(path string, query url.Values) answer {
	h.t.Helper()
	return h.do(h.request(http.MethodGet, path, query, "", nil))
}

func (h *harness) post(path string, query url.Values, body string) answer {
	h.t.Helper()
	return h.do(h.request(http.MethodPost, path, query, "application/json", []byte(body)))
}

// qyGet is a GET with the Host header of qyapi.weixin.qq.com.
func (h *harness) qyGet(path string, query url.Values) answer {
	h.t.Helper()
	req := h.request(http.MethodGet, path, query, "", nil)
	req.Host = "qyapi.weixin.qq.com"
	return h.do(req)
}

func q(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

func tq(token string, kv ...string) url.Values {
	return q(append([]string{"access_token", token}, kv...)...)
}

func (h *harness) advance(d time.Duration) { h.sim.Clock().Advance(d) }

// token fetches a /cgi-bin/token token.
func (h *harness) token(appid, secret string) (string, int) {
	h.t.Helper()
	a := h.get("/cgi-bin/token", q("grant_type", "client_credential", "appid", appid, "secret", secret))
	m := a.json(h.t)
	if code := a.errcode(h.t); code != 0 {
		h.t.Fatalf("/cgi-bin/token: errcode %d: %s", code, a.body)
	}
	return m["access_token"].(string), num(h.t, m["expires_in"])
}

func (h *harness) mpToken() string {
	h.t.Helper()
	tok, _ := h.token(mpApp, mpSecret)
	return tok
}

// stable fetches a stable token.
func (h *harness) stable(appid, secret string, force bool) (string, int) {
	h.t.Helper()
	body, _ := json.Marshal(map[string]any{"grant_type": "client_credential", "appid": appid, "secret": secret, "force_refresh": force})
	a := h.post("/cgi-bin/stable_token", nil, string(body))
	if code := a.errcode(h.t); code != 0 {
		h.t.Fatalf("stable_token: errcode %d: %s", code, a.body)
	}
	m := a.json(h.t)
	return m["access_token"].(string), num(h.t, m["expires_in"])
}

// wecomToken fetches a gettoken token.
func (h *harness) wecomToken(secret string) (string, int) {
	h.t.Helper()
	a := h.qyGet("/cgi-bin/gettoken", q("corpid", corpID, "corpsecret", secret))
	if code := a.errcode(h.t); code != 0 {
		h.t.Fatalf("gettoken: errcode %d: %s", code, a.body)
	}
	m := a.json(h.t)
	return m["access_token"].(string), num(h.t, m["expires_in"])
}

func num(t testing.TB, v any) int {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a JSON number", v, v)
	}
	i, err := n.Int64()
	if err != nil {
		t.Fatalf("%v is not an integer", v)
	}
	return int(i)
}

// expectCode checks an answer's status, content type and errcode.
func expectCode(t testing.TB, a answer, want int) {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %q", a.status, truncate(a.body))
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json; encoding=utf-8" {
		t.Fatalf("Content-Type %q, body %q", ct, truncate(a.body))
	}
	if got := a.errcode(t); got != want {
		t.Fatalf("errcode %d, want %d; body %s", got, want, a.body)
	}
	if want != 0 {
		msg, _ := a.json(t)["errmsg"].(string)
		if !mpErrmsg.MatchString(msg) && !wecomErrmsg.MatchString(msg) {
			t.Fatalf("errmsg %q has neither the MP rid nor the WeCom hint suffix", msg)
		}
	}
}

var (
	mpErrmsg    = regexp.MustCompile(` rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$`)
	wecomErrmsg = regexp.MustCompile(`, hint: \[\d+_\d+_[0-9a-f]+\], from ip: [0-9a-f.:]+, more info at https://open\.work\.weixin\.qq\.com/devtool/query\?e=-?\d+$`)
)

func expectMP(t testing.TB, a answer, want int) {
	t.Helper()
	expectCode(t, a, want)
	if msg := a.json(t)["errmsg"].(string); !mpErrmsg.MatchString(msg) {
		t.Fatalf("errmsg %q is not MP style", msg)
	}
}

func expectWeCom(t testing.TB, a answer, want int) {
	t.Helper()
	expectCode(t, a, want)
	if msg := a.json(t)["errmsg"].(string); want != 0 && !wecomErrmsg.MatchString(msg) {
		t.Fatalf("errmsg %q is not WeCom style", msg)
	}
}

// multipartBody builds a multipart body with a file field.
func multipartBody(t testing.TB, field, filename string, data []byte) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.WriteField("description", "test"); err != nil {
		t.Fatal(err)
	}
	fw, err := mw.CreateFormFile(field, filename)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), buf.Bytes()
}

func (h *harness) upload(path string, query url.Values, field, filename string, data []byte) answer {
	h.t.Helper()
	ct, body := multipartBody(h.t, field, filename, data)
	return h.do(h.request(http.MethodPost, path, query, ct, body))
}

// control calls the control API.
func (h *harness) control(method, path, body string) answer {
	h.t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	return h.do(h.request(method, "/_sim"+path, nil, "application/json", b))
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// serve runs one request through the handler directly.
func serve(h http.Handler, method, target, body string, header http.Header) *httptest.ResponseRecorder {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func sha256hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
