package caddywechat

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestDecodeOptional: an admin call's body is optional, but what is sent
// must be what the call takes: a misspelt if_generation would make a
// refresh unconditional, so it is refused, as are an oversized body and
// anything after the object.
func TestDecodeOptional(t *testing.T) {
	for _, c := range []struct {
		name, body string
		status     int // 0: accepted
	}{
		{"none", "", 0},
		{"blank", " \n", 0},
		{"the field", `{"if_generation":3}`, 0},
		{"misspelt", `{"ifGeneration":3}`, http.StatusBadRequest},
		{"wrong type", `{"if_generation":"3"}`, http.StatusBadRequest},
		{"two objects", `{"if_generation":3}{"if_generation":4}`, http.StatusBadRequest},
		{"oversized", `{"if_generation":3}` + strings.Repeat(" ", maxAdminBody), http.StatusRequestEntityTooLarge},
	} {
		var req struct {
			IfGeneration *uint64 `json:"if_generation"`
		}
		err := decodeOptional(httptest.NewRequest("POST", "/wechat/accounts/mp/refresh", strings.NewReader(c.body)), &req)
		var ae caddy.APIError
		switch {
		case c.status == 0 && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.status != 0 && (!errors.As(err, &ae) || ae.HTTPStatus != c.status):
			t.Errorf("%s: %v, want HTTP %d", c.name, err, c.status)
		case c.name == "the field" && (req.IfGeneration == nil || *req.IfGeneration != 3):
			t.Errorf("%s: decoded %+v", c.name, req)
		}
	}
}
