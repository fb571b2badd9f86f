package wxapi

import (
	"strings"
	"testing"
)

func TestMask(t *testing.T) {
	tok := "81_TOKENabcdefghijklmnopqrstuvwxyz"
	b := []byte(`{"request_url":"access_token=` + tok + `&x=1","again":"` + tok + `","short":"abc"}`)
	Mask(b, []string{tok, "abc"})
	if strings.Contains(string(b), tok) || !strings.Contains(string(b), `"short":"abc"`) {
		t.Errorf("masked: %s", b)
	}
	if want := strings.Repeat("*", len(tok)); strings.Count(string(b), want) != 2 {
		t.Errorf("masked: %s", b)
	}
	vals := []string{tok}
	if n := testing.AllocsPerRun(100, func() { Mask(b, vals) }); n != 0 {
		t.Errorf("Mask allocates %v times", n)
	}
	if MaskTail([]string{tok, "abc"}) != len(tok)-1 {
		t.Error("MaskTail")
	}
}

func TestMaskParams(t *testing.T) {
	b := []byte(`{"request_url":"access_token=81_ABCDEF&x=1&appsecret=s3cr","cut":"secret=abc`)
	MaskParams(b, []string{"access_token=", "secret="})
	want := `{"request_url":"access_token=*********&x=1&appsecret=****","cut":"secret=***`
	if string(b) != want {
		t.Errorf("MaskParams: %s, want %s", b, want)
	}
}
