package wxapi

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
)

func TestScanErrcode(t *testing.T) {
	cases := []struct {
		in   string
		code int
		ok   bool
	}{
		{`{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest rid: 1-2-3"}`, 40001, true},
		{` {"errmsg":"ok", "errcode" : 0 }`, 0, true},
		{"\xEF\xBB\xBF{\"errcode\":-1}", -1, true},
		{`{"errcode":"42001"}`, 42001, true},
		{`{"access_token":"abc","expires_in":7200}`, 0, false},
		{`{"data":{"errcode":40001},"errcode":0}`, 0, true},
		{`{"data":{"errcode":40001}}`, 0, false},
		{`{"msg":"{\"errcode\":40001}","n":[1,{"errcode":2}]}`, 0, false},
		{`{"msg":"a\"b","errcode":42001}`, 42001, true},
		{`[{"errcode":40001}]`, 0, false},
		{`errcode:40001`, 0, false},
		{``, 0, false},
		{`{"errcode":40.5}`, 0, false},
		{`{"errcode":`, 0, false},
		{`{"errcode":40001`, 0, false},
		{`{"errcode":40014}garbage`, 40014, true},
		{`{"a":true,"b":null,"errcode":48001}`, 48001, true},
	}
	for _, c := range cases {
		code, ok := ScanErrcode([]byte(c.in))
		if code != c.code || ok != c.ok {
			t.Errorf("ScanErrcode(%q) = %d, %v; want %d, %v", c.in, code, ok, c.code, c.ok)
		}
	}
}

func TestScanRid(t *testing.T) {
	b := []byte(`{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest rid: 6650a1b2-1c2d3e4f-5a6b7c8d"}`)
	if got := string(ScanRid(b)); got != "6650a1b2-1c2d3e4f-5a6b7c8d" {
		t.Errorf("rid = %q", got)
	}
	if got := ScanRid([]byte(`{"errcode":0,"errmsg":"ok"}`)); got != nil {
		t.Errorf("rid = %q, want none", got)
	}
}

func TestScanAllocationFree(t *testing.T) {
	b := []byte(`{"errmsg":"access_token expired rid: 1-2-3","data":{"x":[1,2,"]"]},"errcode":42001}`)
	allocs := testing.AllocsPerRun(100, func() {
		if code, ok := ScanErrcode(b); !ok || code != 42001 {
			t.Fatal("scan failed")
		}
		_ = ScanRid(b)
	})
	if allocs != 0 {
		t.Errorf("ScanErrcode allocates %v times per run", allocs)
	}
}

func TestAppendErrorIsValidJSON(t *testing.T) {
	for _, msg := range []string{"\x01\xff<>&", "appid \u2028 ok", `"quoted" \back`} {
		if b := AppendError(nil, 40013, msg); !json.Valid(b) {
			t.Errorf("AppendError(%q) = %s: not JSON", msg, b)
		}
	}
}

func TestAppendError(t *testing.T) {
	b := AppendError(nil, -1, `token "x" unavailable`)
	var v struct {
		Errcode int    `json:"errcode"`
		Errmsg  string `json:"errmsg"`
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Errcode != -1 || v.Errmsg != `token "x" unavailable` {
		t.Fatalf("AppendError produced %s (%v)", b, err)
	}
}

// FuzzScanErrcode checks the scanner agrees with encoding/json on every input
// encoding/json accepts as an object with an integer errcode, and never panics.
func FuzzScanErrcode(f *testing.F) {
	for _, s := range []string{`{"errcode":40001}`, `{"a":"\"","errcode":-1}`, `{"x":{"errcode":1}}`, `{`, `{"errcode":1,}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		code, ok := ScanErrcode(b)
		var v map[string]json.RawMessage
		if json.Unmarshal(b, &v) != nil {
			return
		}
		raw, has := v["errcode"]
		var want int
		if !has || json.Unmarshal(raw, &want) != nil {
			return
		}
		// Compare only single-member objects spelled plainly: encoding/json takes
		// the last of duplicate keys and decodes escaped key names, the scanner
		// takes the first key spelled "errcode".
		if len(v) == 1 && bytes.Contains(b, []byte(`"errcode"`)) && (!ok || code != want) {
			t.Errorf("ScanErrcode(%q) = %d, %v; encoding/json says %d", b, code, ok, want)
		}
	})
}

func BenchmarkScanErrcode(b *testing.B) {
	body := []byte(`{"errcode":0,"errmsg":"ok","subscribe":1,"openid":"o6_bmjrPTlm6_2sgVt7hMZOPfL2M","nickname":"Band","sex":1,"language":"zh_CN","city":"广州","province":"广东","country":"中国"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ScanErrcode(body); !ok {
			b.Fatal("no errcode")
		}
	}
}

func TestSplitRequestID(t *testing.T) {
	for _, c := range []struct{ in, text, id string }{
		{"invalid appsecret rid: 6650a1b2-1c2d3e4f-5a6b7c8d", "invalid appsecret", "6650a1b2-1c2d3e4f-5a6b7c8d"},
		{"invalid credential, rid: 1-2-3", "invalid credential", "1-2-3"},
		{"invalid secret, hint: [1693222-abc], from ip: 1.2.3.4", "invalid secret, from ip: 1.2.3.4", "1693222-abc"},
		{"system error", "system error", ""},
	} {
		text, id := SplitRequestID(c.in)
		if text != c.text || id != c.id {
			t.Errorf("SplitRequestID(%q) = %q, %q; want %q, %q", c.in, text, id, c.text, c.id)
		}
	}
}

// TestMayBeTokenError: the quick test never turns away a token error that
// ScanErrcode would find, whatever the spelling, and its digits are those
// of every Refreshable code.
func TestMayBeTokenError(t *testing.T) {
	for _, code := range refreshableCodes {
		c := strconv.Itoa(code)
		for _, answer := range []string{
			`{"errcode":` + c + `,"errmsg":"invalid credential"}`,
			`{"errmsg":"x","errcode":"` + c + `"}`,
			` {"a":[1,{"b":2}], "errcode" : ` + c + ` }`,
		} {
			got, ok := ScanErrcode([]byte(answer))
			if !ok || got != code || !MayBeTokenError([]byte(answer)) {
				t.Errorf("%s: ScanErrcode %d %v, MayBeTokenError %v", answer, got, ok, MayBeTokenError([]byte(answer)))
			}
		}
	}
	for _, answer := range []string{`{"errcode":0,"errmsg":"ok"}`, `{"openid":"o1","subscribe_time":1700000000}`, `{"errcode":45009}`} {
		if MayBeTokenError([]byte(answer)) {
			t.Errorf("%s: may be a token error", answer)
		}
	}
}
