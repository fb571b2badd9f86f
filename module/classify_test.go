package caddywechat

import (
	"net/url"
	"testing"
)

func TestClassify(t *testing.T) {
	for path, want := range map[string]pathClass{
		"/cgi-bin/menu/get":                           pathAPI,
		"/wxa/getwxacodeunlimit":                      pathAPI,
		"/datacube/getweanalysisappiddailysummary":    pathAPI,
		"/cgi-bin/tokenx":                             pathAPI,
		"/cgi-bin/token/x":                            pathAPI,
		"/cgi-bin/ticket/getticketx":                  pathAPI,
		"/sns/userinfo":                               pathUserCredential,
		"/sns/jscode2session":                         pathAppSecret,
		"/sns/oauth2/access_token":                    pathAppSecret,
		"/cgi-bin/clear_quota/v2":                     pathAppSecret,
		"/cgi-bin/clear_quota":                        pathAPI,
		"/cgi-bin/component/api_authorizer_token":     pathOther,
		"/cgi-bin/service/get_suite_token":            pathOther,
		"/other":                                      pathOther,
		"/wechat-gateway/raw_token/":                  pathOther,
		"/cgi-bin/ticket/get/":                        pathInvalid,
		"/cgi-bin/clear_quota/":                       pathInvalid,
		"/cgi-bin/menu/get/":                          pathInvalid,
		"/sns/jscode2session/":                        pathInvalid,
		"/sns/userinfo/":                              pathInvalid,
		"/cgi-bin/component/":                         pathInvalid,
		"/cgi-bin/component/api_get_authorizer_info/": pathInvalid,
		"/cgi-bin/service/get_suite_token/":           pathOther,
		"/cgi-bin/service/get_permanent_code/":        pathInvalid,
		"/cgi-bin/component/api_query_auth/":          pathInvalid,
		"/cgi-bin/menu/get_token/":                    pathInvalid,
		"/cgi-bin/component/api_component_token/":     pathOther,
		"/other/":                   pathOther,
		"/":                         pathOther,
		"":                          pathOther,
		"/cgi-bin/token":            pathTokenEndpoint,
		"/cgi-bin/token/":           pathTokenEndpoint,
		"/cgi-bin/stable_token":     pathTokenEndpoint,
		"/cgi-bin/gettoken/":        pathTokenEndpoint,
		"/cgi-bin/ticket/getticket": pathTicket,
		"/cgi-bin/get_jsapi_ticket": pathTicket,
		"/cgi-bin/ticket/get":       pathTicket,
		RawTokenPath:                pathRawToken,
		JSSDKConfigPath:             pathJSSDKConfig,
		"/cgi-bin//token":           pathInvalid,
	} {
		if got, _ := classify(&url.URL{Path: path}); got != want {
			t.Errorf("classify(%s) = %d, want %d", path, got, want)
		}
	}
	for path, want := range map[string]bool{
		"/cgi-bin/token": true, "/cgi-bin/stable_token": true, "/cgi-bin/gettoken": true, "/cgi-bin/token/": true,
		"/cgi-bin/tokenx": false, "/cgi-bin/ticket/getticket": false,
	} {
		if got := tokenEndpoint(path) != ""; got != want {
			t.Errorf("tokenEndpoint(%s) = %v", path, got)
		}
	}
}

func TestUnsafePath(t *testing.T) {
	for path, bad := range map[string]bool{
		"/cgi-bin/user/info":           false,
		"/cgi-bin/user/info%20x":       true,
		"/cgi-bin/user/../menu/create": true,
		"/cgi-bin/./token":             true,
		"/cgi-bin/user/%2e%2e/menu":    true,
		"/cgi-bin/user/%2E%2e/menu":    true,
		"/cgi-bin/user/..%2fmenu":      true,
		"/cgi-bin/user%5cmenu":         true,
		"//cgi-bin/token":              true,
		"/cgi-bin/user/info/..":        true,
		"/cgi-bin/%41%42/x":            true,
		"/cgi-bin/a%20b/%25/c":         true,
		"/cgi-bin/user/..;/menu":       true,
		"/cgi-bin/user/.;x/menu":       true,
		"/cgi-bin/user/..%3b/menu":     true,
		"/cgi-bin/user/..%3B/menu":     true,
		"/cgi-bin/user/a;b/menu":       true,
		"/cgi-bin/%252e%252e/token":    true,
		"/cgi-bin/user/info%00":        true,
		"/cgi-bin/‥/token":             true,
		// Upper case: refused where the path is one the gateway guards.
		"/cgi-bin/Menu/get":                          false,
		"/Health":                                    false,
		"/cgi-bin/CLEAR_QUOTA":                       true,
		"/cgi-bin/Token":                             true,
		"/cgi-bin/ticket/GETTICKET":                  true,
		"/SNS/userinfo":                              true,
		"/sns/JSCODE2SESSION":                        true,
		"/cgi-bin/component/API_QUERY_AUTH":          true,
		"/cgi-bin/Component/api_get_authorizer_info": true,
		"/cgi-bin/SERVICE/get_suite_token":           true,
		"/Wechat-Gateway/raw_token":                  true,
	} {
		u, err := url.Parse("http://h" + path)
		if err != nil {
			t.Fatal(err)
		}
		if got := unsafePath(u) != ""; got != bad {
			t.Errorf("unsafePath(%s) = %q, want refused %v", path, unsafePath(u), bad)
		}
	}
	u, _ := url.Parse("http://h/cgi-bin/user/info?openid=x")
	if n := testing.AllocsPerRun(100, func() { _ = unsafePath(u) }); n != 0 {
		t.Errorf("unsafePath allocates %v times", n)
	}
}
