package caddywechat

import (
	"net/http"
	"testing"
)

func TestHoldBack(t *testing.T) {
	for _, c := range []struct {
		status int
		header map[string]string
		want   bool
	}{
		{200, map[string]string{"Content-Type": "application/json; encoding=utf-8", "Content-Length": "85"}, true},
		{200, map[string]string{"Content-Type": "Application/JSON"}, true},
		{200, map[string]string{"Content-Type": " application/json ;charset=UTF-8"}, true},
		{200, map[string]string{"Content-Type": "text/plain"}, true},
		{200, map[string]string{"Content-Type": "TEXT/html; charset=utf-8"}, true},
		{200, map[string]string{}, true},
		{200, map[string]string{"Content-Type": "application/json", "Content-Length": "4097"}, false},
		{200, map[string]string{"Content-Type": "application/json", "Content-Length": "x"}, false},
		{200, map[string]string{"Content-Type": "image/jpeg"}, false},
		{200, map[string]string{"Content-Type": "application/jsonp"}, false},
		{200, map[string]string{"Content-Type": "text/"}, false},
		{200, map[string]string{"Content-Type": "application/octet-stream"}, false},
		{200, map[string]string{"Content-Type": "text/plain", "Content-Disposition": `attachment; filename="a.txt"`}, false},
		{206, map[string]string{"Content-Type": "application/json"}, false},
		{500, map[string]string{"Content-Type": "application/json"}, false},
	} {
		h := make(http.Header)
		for k, v := range c.header {
			h.Set(k, v)
		}
		if got := holdBack(c.status, h); got != c.want {
			t.Errorf("holdBack(%d, %v) = %v, want %v", c.status, c.header, got, c.want)
		}
	}
}

func TestHoldBackAllocationFree(t *testing.T) {
	h := http.Header{"Content-Type": {"application/json; encoding=utf-8"}, "Content-Length": {"312"}}
	if n := testing.AllocsPerRun(100, func() {
		if !holdBack(http.StatusOK, h) {
			t.Fatal("WeChat's JSON answer not held back")
		}
	}); n != 0 {
		t.Errorf("holdBack allocates %v times per answer", n)
	}
}
