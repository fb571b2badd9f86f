package token

import (
	"testing"
)

// TestAccountKindDefaults checks each kind's default token endpoint and
// base URL, and the endpoints it refuses.
func TestAccountKindDefaults(t *testing.T) {
	for _, c := range []struct {
		in   Account
		want string // the endpoint and base URL, or the error
	}{
		{Account{Kind: Official}, "stable_token " + DefaultOfficialBaseURL},
		{Account{Kind: Official, Endpoint: ClientCredential}, "token " + DefaultOfficialBaseURL},
		{Account{Kind: Official, Endpoint: GetToken}, `account "a": token_endpoint "gettoken" is not one of stable_token, token`},
		{Account{Kind: Component}, "component_token " + DefaultOfficialBaseURL},
		{Account{Kind: Component, Endpoint: StableToken}, `account "a": token_endpoint "stable_token": third-party platforms use component_token`},
		{Account{Kind: WeCom}, "gettoken " + DefaultWeComBaseURL},
		{Account{Kind: WeCom, BaseURL: "http://sim"}, "gettoken http://sim"},
		{Account{Kind: WeCom, Endpoint: ClientCredential}, `account "a": token_endpoint "token": WeCom accounts use gettoken`},
		{Account{Kind: "mini"}, `account "a": kind "mini" is not one of official, wecom, component`},
	} {
		c.in.Name, c.in.AppID, c.in.Secret = "a", "wx1", "s"
		a, err := c.in.withDefaults()
		got := string(a.Endpoint) + " " + a.BaseURL
		if err != nil {
			got = err.Error()
		}
		if got != c.want {
			t.Errorf("%s %q: %s, want %s", c.in.Kind, c.in.Endpoint, got, c.want)
		}
	}
}
