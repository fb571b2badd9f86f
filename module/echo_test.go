package caddywechat

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// echoUpstream answers every call with the query it received, in the way
// asked for: an upstream (or a WeChat API) that echoes requests.
func echoUpstream(contentType string, inHeader bool, cut int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.RawQuery
		if cut > 0 && len(q) > cut {
			q = q[:cut]
		}
		if inHeader {
			w.Header().Set("Location", "https://example.com/?"+q)
		}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"errcode":0,"request_url":"` + q + `"}`))
	}
}

// TestEchoesNeverShowTheToken: whatever an upstream echoes, in any content
// type but media, in headers, cut short, the real token does not reach the
// client.
func TestEchoesNeverShowTheToken(t *testing.T) {
	for _, c := range []struct {
		name        string
		contentType string
		header      bool
		cut         int
	}{
		{"json", "application/json", false, 0},
		{"javascript", "application/javascript", false, 0},
		{"octet-stream", "application/octet-stream", false, 0},
		{"location header", "text/html", true, 0},
		{"cut inside the token", "application/json", false, 40},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newGateway(t)
			g.setUpstream(echoUpstream(c.contentType, c.header, c.cut))
			rec := g.get(g.trustedSite(), "/cgi-bin/openapi/rid/get?pad=x")
			real := g.fetches.last()
			if real == "" {
				t.Fatal("no token was fetched")
			}
			all := rec.Body.String() + rec.Header().Get("Location")
			for _, part := range []string{real, real[:20], real[len(real)-20:]} {
				if strings.Contains(all, part) {
					t.Fatalf("the client saw (part of) the real token: %s", all)
				}
			}
		})
	}
}

func TestRefusedMethodsQueriesAndPaths(t *testing.T) {
	g := newGateway(t)
	site := g.trustedSite()
	rec := g.serve(site, httptest.NewRequest("TRACE", "/cgi-bin/menu/get", nil))
	wantErrcode(t, rec, wxapi.CodeRequireGET)
	for _, target := range []string{
		"/cgi-bin/menu/get?x=1;access_token=BOGUS",
		"/cgi-bin/menu/get?access_token%00=x",
		"/cgi-bin/menu/get?bad=%zz",
		"/cgi-bin/%252e%252e/token",
		"/sns/auth?openid=o;secret=k",
		"/cgi-bin/CLEAR_QUOTA",
		"/cgi-bin/component/API_QUERY_AUTH",
	} {
		wantErrcode(t, g.get(site, target), wxapi.CodeInvalidURL)
	}
	g.wantNothingUpstream(t)
}

// TestRangeOnlyForMedia: a Range reaches WeChat for media downloads only,
// so that no echo is cut where the client chooses.
func TestRangeOnlyForMedia(t *testing.T) {
	g := newGateway(t)
	site := g.trustedSite()
	for path, kept := range map[string]bool{"/cgi-bin/openapi/rid/get": false, "/cgi-bin/media/get": true} {
		g.resetSeen()
		r := httptest.NewRequest(http.MethodGet, path+"?media_id=m", nil)
		r.Header.Set("Range", "bytes=0-9")
		g.serve(site, r)
		seen := g.upstreamRequests()
		if len(seen) == 0 || (seen[0].Header.Get("Range") != "") != kept {
			t.Errorf("%s: Range upstream %q, want kept %v", path, seen[0].Header.Get("Range"), kept)
		}
	}
}

// TestClearQuotaNeedsAdmin: both quota resets act for every client of the
// account; only an admin client may call them.
func TestClearQuotaNeedsAdmin(t *testing.T) {
	g := newGateway(t, withAdminClient())
	site := g.clientsSite()
	shop := g.gatewayToken(site, "official", mpAppID, shopKey)
	wantErrcode(t, g.post(site, "/cgi-bin/clear_quota?access_token="+shop, "application/json", []byte(`{"appid":"`+mpAppID+`"}`)), wxapi.CodeAPIUnauthorized)
	g.wantNothingUpstream(t)
	admin := g.gatewayToken(site, "official", mpAppID, adminKey)
	wantErrcode(t, g.post(site, "/cgi-bin/clear_quota?access_token="+admin, "application/json", []byte(`{"appid":"`+mpAppID+`"}`)), 0)
}

// TestFileDownloadsUnchanged: a file WeChat serves back (a WeCom file's
// media/get, get_material: a Content-Disposition) reaches the client byte
// for byte, though it holds what the mask would take for credentials; the
// same text without a Content-Disposition is masked. The real token itself
// is masked in a file too.
func TestFileDownloadsUnchanged(t *testing.T) {
	content := "id,url\n1,https://example.com/cb?access_token=abc123&secret=s3cr3t&corpsecret=q\n"
	for _, c := range []struct {
		contentType, disposition string
		unchanged                bool
	}{
		{"text/csv", `attachment; filename="report.csv"`, true},
		{"application/zip", `attachment; filename="export.zip"`, true},
		{"application/json", `attachment; filename="export.json"`, true},
		{"text/csv", "", false},
	} {
		g := newGateway(t)
		g.setUpstream(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", c.contentType)
			if c.disposition != "" {
				w.Header().Set("Content-Disposition", c.disposition)
			}
			_, _ = w.Write([]byte(content))
		}))
		rec := g.get(g.trustedSite(), "/cgi-bin/media/get?media_id=m1")
		if got := rec.Body.String() == content; got != c.unchanged {
			t.Errorf("%s, %q: body %q, want unchanged %v", c.contentType, c.disposition, rec.Body, c.unchanged)
		}
	}
	// A file that holds the real token (an echo with a Content-Disposition):
	// the token itself is still masked.
	g := newGateway(t)
	g.setUpstream(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv")
		w.Header().Set("Content-Disposition", `attachment; filename="echo.csv"`)
		_, _ = w.Write([]byte("url\n" + r.URL.RawQuery + "\n"))
	}))
	rec := g.get(g.trustedSite(), "/cgi-bin/media/get?media_id=m1")
	if real := g.fetches.last(); real == "" || strings.Contains(rec.Body.String(), real) {
		t.Errorf("a file echoing the query showed the real token: %s", rec.Body)
	}
}
