package simulator

import (
	"strings"
	"testing"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// TestRidGetEchoesTheRequest: rid/get answers the logged request of an
// error, with its query string (access_token, or appid and secret for a
// token call) and body, as WeChat does; only to the account it belongs to.
func TestRidGetEchoesTheRequest(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	ridOf := func(a answer) string {
		t.Helper()
		_, id := wxapi.SplitRequestID(a.json(t)["errmsg"].(string))
		if id == "" {
			t.Fatalf("no rid in %s", a.body)
		}
		return id
	}
	failed := h.post("/cgi-bin/openapi/quota/get", tq(tok), `{"cgi_path":"/cgi-bin/nope"}`)
	expectMP(t, failed, wxapi.CodeCgiPathNotFound)
	got := h.post("/cgi-bin/openapi/rid/get", tq(tok), `{"rid":"`+ridOf(failed)+`"}`)
	expectCode(t, got, 0)
	req := got.json(t)["request"].(map[string]any)
	if url := req["request_url"].(string); !strings.Contains(url, "access_token="+tok) {
		t.Errorf("request_url %q does not echo the token", url)
	}
	if body := req["request_body"].(string); !strings.Contains(body, "/cgi-bin/nope") {
		t.Errorf("request_body %q", body)
	}
	if resp := req["response_body"].(string); !strings.Contains(resp, "76021") {
		t.Errorf("response_body %q", resp)
	}

	// A token call with a wrong secret: its rid shows the secret sent.
	bad := h.get("/cgi-bin/token", q("grant_type", "client_credential", "appid", mpApp, "secret", "wrong-secret"))
	expectMP(t, bad, wxapi.CodeInvalidCredential)
	got = h.post("/cgi-bin/openapi/rid/get", tq(tok), `{"rid":"`+ridOf(bad)+`"}`)
	expectCode(t, got, 0)
	if url := got.json(t)["request"].(map[string]any)["request_url"].(string); !strings.Contains(url, "secret=wrong-secret") {
		t.Errorf("request_url %q does not echo the secret", url)
	}

	// Another account may not read it; unknown and empty rids are errors.
	tok2, _ := h.token(mpApp2, mpSecret2)
	expectMP(t, h.post("/cgi-bin/openapi/rid/get", tq(tok2), `{"rid":"`+ridOf(failed)+`"}`), wxapi.CodeRidForbidden)
	expectMP(t, h.post("/cgi-bin/openapi/rid/get", tq(tok), `{"rid":"00000000-00000000-00000000"}`), wxapi.CodeRidNotFound)
	expectMP(t, h.post("/cgi-bin/openapi/rid/get", tq(tok), `{"rid":""}`), wxapi.CodeRidInvalid)
}
