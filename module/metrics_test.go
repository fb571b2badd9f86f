package caddywechat

import "testing"

func TestCountCallAllocationFree(t *testing.T) {
	countCall("shop", "mp", 0)
	if n := testing.AllocsPerRun(100, func() { countCall("shop", "mp", 0) }); n != 0 {
		t.Errorf("countCall allocates %v times per call", n)
	}
}
