package simulator

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func FuzzQueryValue(f *testing.F) {
	for _, seed := range [][2]string{
		{"access_token=abc&openid=o1", "access_token"},
		{"a=1&a=2", "a"},
		{"access%5Ftoken=x%20y", "access_token"},
		{"k=a+b", "k"},
		{"k", "k"},
		{"k=%zz", "k"},
		{"=v&k=", "k"},
		{"a%26b=1", "a&b"},
		{"", "x"},
		{"appid=wx1&secret=s&code=CODE1&grant_type=authorization_code", "code"},
		{"appid=wx1&js_code=JSCODE1", "js_code"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, raw, key string) {
		got, ok := queryValue(raw, key)
		if want, err := url.ParseQuery(raw); err == nil {
			vals, has := want[key]
			if has != ok || (has && vals[0] != got) {
				t.Fatalf("queryValue(%q, %q) = %q, %v; url.ParseQuery says %q, %v", raw, key, got, ok, vals, has)
			}
		}
		// Redaction never lets a sensitive value through.
		red := redactQuery(raw)
		for name := range sensitiveParams {
			if v, ok := queryValue(red, name); ok && v != "" && v != "REDACTED" {
				t.Fatalf("redactQuery(%q) = %q leaks %s=%q", raw, red, name, v)
			}
		}
	})
}

// fuzzTarget is a simulator with tokens of both services.
type fuzzTarget struct {
	sim       *Simulator
	mp, wecom string
}

func newFuzzTarget(t testing.TB) *fuzzTarget {
	sim, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	ft := &fuzzTarget{sim: sim}
	rec := serve(sim, "GET", "/cgi-bin/token?grant_type=client_credential&appid="+mpApp+"&secret="+mpSecret, "", nil)
	ft.mp = between(rec.Body.String(), `"access_token":"`, `"`)
	rec = serve(sim, "GET", "/cgi-bin/gettoken?corpid="+corpID+"&corpsecret="+appSecret1, "", nil)
	ft.wecom = between(rec.Body.String(), `"access_token":"`, `"`)
	if ft.mp == "" || ft.wecom == "" {
		t.Fatal("no tokens")
	}
	return ft
}

// checkAnswer reports an error unless rec is a well-formed simulator
// answer. It does not stop the test, so goroutines may call it.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	ct := rec.Header().Get("Content-Type")
	switch {
	case rec.Code == http.StatusNotFound:
	case rec.Code != http.StatusOK && rec.Code != http.StatusPartialContent:
		t.Errorf("status %d: %q", rec.Code, truncate(rec.Body.Bytes()))
	case strings.HasPrefix(ct, "application/json"):
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Errorf("invalid JSON answer %q: %v", truncate(rec.Body.Bytes()), err)
		}
	case ct == "image/png", ct == "image/jpeg", ct == "audio/amr", ct == "audio/mpeg":
	default:
		t.Errorf("unexpected Content-Type %q", ct)
	}
}

var jsonPaths = []string{
	"/cgi-bin/stable_token",
	"/cgi-bin/menu/create",
	"/cgi-bin/message/custom/send",
	"/wxa/getwxacodeunlimit",
	"/cgi-bin/openapi/quota/get",
	"/cgi-bin/clear_quota",
	"/cgi-bin/media/get",
	"/cgi-bin/message/send",
}

func FuzzJSONBodies(f *testing.F) {
	for i := range jsonPaths {
		f.Add(uint8(i), `{}`)
	}
	f.Add(uint8(0), `{"grant_type":"client_credential","appid":"`+mpApp+`","secret":"`+mpSecret+`","force_refresh":true}`)
	f.Add(uint8(1), testMenu)
	f.Add(uint8(2), `{"touser":"o1","msgtype":"text","text":{"content":"hi"}}`)
	f.Add(uint8(3), `{"scene":"a=1","width":1e9,"line_color":{"r":"300","g":-1,"b":null}}`)
	f.Add(uint8(4), `{"cgi_path":"/cgi-bin/token"}`)
	f.Add(uint8(5), `{"appid":null}`)
	f.Add(uint8(6), `{"media_id":"large"}`)
	f.Add(uint8(7), `{"touser":"a|b","msgtype":"text","agentid":"1000002","text":{"content":"x"}}`)
	f.Add(uint8(7), `{"agentid":1e400}`)
	f.Add(uint8(1), "\xff\xfe")
	f.Add(uint8(1), `{"button":[{"name":"a","sub_button":[{"name":"b","sub_button":[{}]}]}]}`)
	ft := newFuzzTarget(f)
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		path := jsonPaths[int(which)%len(jsonPaths)]
		token := ft.mp
		if path == "/cgi-bin/message/send" {
			token = ft.wecom
		}
		target := path + "?access_token=" + token
		if path == "/cgi-bin/media/get" {
			target = path + "?access_token=" + ft.wecom // large media stays small in testConfig
		}
		rec := serve(ft.sim, "POST", target, body, http.Header{"Content-Type": {"application/json"}})
		checkAnswer(t, rec)
	})
}

func FuzzMultipart(f *testing.F) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("media", "a.jpg")
	fw.Write([]byte("jpeg bytes here"))
	mw.Close()
	f.Add("image", mw.FormDataContentType(), buf.String(), false)
	f.Add("file", mw.FormDataContentType(), buf.String(), true)
	f.Add("image", "multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"media\"; filename=\"a.jpg\"\r\n\r\nabc\r\n--x--", false)
	f.Add("voice", "multipart/form-data", "", false)
	f.Add("thumb", "text/plain", "hello", false)
	f.Add("image", "multipart/form-data; boundary=\"", "--", true)
	ft := newFuzzTarget(f)
	f.Fuzz(func(t *testing.T, mtype, contentType, body string, wecom bool) {
		token := ft.mp
		if wecom {
			token = ft.wecom
		}
		target := "/cgi-bin/media/upload?access_token=" + token + "&type=" + url.QueryEscape(mtype)
		rec := serve(ft.sim, "POST", target, body, http.Header{"Content-Type": {contentType}})
		checkAnswer(t, rec)
		var m map[string]any
		json.Unmarshal(rec.Body.Bytes(), &m)
		if id, ok := m["media_id"].(string); ok {
			got := serve(ft.sim, "GET", "/cgi-bin/media/get?access_token="+token+"&media_id="+id, "", nil)
			if got.Code != 200 || strings.HasPrefix(got.Header().Get("Content-Type"), "application/json") && !bytes.Contains(got.Body.Bytes(), []byte("video_url")) {
				t.Fatalf("uploaded media %s cannot be fetched: %d %s", id, got.Code, truncate(got.Body.Bytes()))
			}
		}
	})
}

func FuzzRequest(f *testing.F) {
	f.Add("GET", "/cgi-bin/token?grant_type=client_credential&appid="+mpApp+"&secret="+mpSecret, "", "")
	f.Add("POST", "/cgi-bin/menu/get?access_token=%zz", "api.weixin.qq.com", "x")
	f.Add("GET", "/cgi-bin/media/get?media_id=large&access_token=", "qyapi.weixin.qq.com", "")
	f.Add("DELETE", "/sns/userinfo?openid=&access_token=a&access_token=b", "", "")
	f.Add("GET", "/cgi-bin/gettoken?corpid=&corpsecret=;", "QYAPI.weixin.qq.com", "")
	f.Add("POST", "/_sim/faults", "", `{"path":"/cgi-bin/menu/get","errcode":-1,"count":1}`)
	f.Add("POST", "/_sim/clock/advance", "", `{"by":"-1h"}`)
	f.Add("POST", "/_sim/tokens/invalidate", "", `{"appid":"`+mpApp+`"}`)
	f.Add("GET", "/_sim/media/", "", "")
	ft := newFuzzTarget(f)
	f.Fuzz(func(t *testing.T, method, target, host, body string) {
		req, err := http.NewRequest(method, "http://api.weixin.qq.com"+target, strings.NewReader(body))
		if err != nil || !strings.HasPrefix(target, "/") {
			return
		}
		if strings.Contains(target, `"drop"`) || strings.Contains(body, "drop") || strings.Contains(body, "atency") {
			return // a drop panics in a recorder; latency would slow fuzzing
		}
		req.Host = host
		req.RemoteAddr = "192.0.2.1:1234"
		rec := httptest.NewRecorder()
		ft.sim.ServeHTTP(rec, req)
		if rec.Code == 0 {
			t.Fatal("no status")
		}
		ft.sim.ClearFaults("")
	})
}

// TestCountersHideLoginCodes: a user's login code is as secret as a token
// for the minutes it lives, so the counters' queries do not show it.
func TestCountersHideLoginCodes(t *testing.T) {
	red := redactQuery("appid=wx1&secret=s&code=CODE1&grant_type=authorization_code&js_code=JSCODE1")
	if strings.Contains(red, "CODE1") || !strings.Contains(red, "grant_type=authorization_code") {
		t.Fatalf("redactQuery = %q", red)
	}
}
