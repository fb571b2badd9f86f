package caddywechat

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http/httptest"
	"testing"
)

func TestHeldBody(t *testing.T) {
	for _, size := range []int{1, firstChunk - 1, firstChunk, firstChunk + 1, 3*nextChunk + 17, 10_000_000} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		r := httptest.NewRequest("POST", "/cgi-bin/media/upload", bytes.NewReader(data))
		r.ContentLength = -1 // as a chunked upload: no size known in advance
		before := replayMemory.Load()
		body, stream, err := readReplayable(r, 24<<20, DefaultMaxReplayMemory)
		if err != nil || stream != nil || body.size != int64(size) {
			t.Fatalf("size %d: %v, stream %v, held %d", size, err, stream != nil, body.size)
		}
		if held := replayMemory.Load() - before; held < int64(size) || held > int64(size)+nextChunk {
			t.Errorf("size %d: %d bytes reserved", size, held)
		}
		for range 2 { // the first attempt and the replay read the same bytes
			got, _ := io.ReadAll(body.reader())
			if !bytes.Equal(got, data) {
				t.Fatalf("size %d: the held body differs", size)
			}
		}
		body.free()
		if replayMemory.Load() != before {
			t.Errorf("size %d: memory not given back", size)
		}
	}
}

// TestHeldBodyOverTheLimitStreams: a body past max_replay_body, or past the
// memory budget, streams whole and is not held for a replay.
func TestHeldBodyOverTheLimitStreams(t *testing.T) {
	data := make([]byte, 200_000)
	_, _ = rand.Read(data)
	for _, c := range []struct {
		name          string
		limit, budget int64
	}{{"limit", 100_000, DefaultMaxReplayMemory}, {"budget", 24 << 20, 50_000}} {
		r := httptest.NewRequest("POST", "/cgi-bin/media/upload", bytes.NewReader(data))
		r.ContentLength = -1
		before := replayMemory.Load()
		body, stream, err := readReplayable(r, c.limit, c.budget)
		if err != nil || stream == nil {
			t.Fatalf("%s: %v, stream %v", c.name, err, stream != nil)
		}
		got, _ := io.ReadAll(stream)
		if !bytes.Equal(got, data) {
			t.Errorf("%s: the streamed body differs", c.name)
		}
		body.free()
		if replayMemory.Load() != before {
			t.Errorf("%s: memory not given back", c.name)
		}
	}
}

// TestSmallBodyHeldPastTheBudget: with the budget spent by uploads, a small
// JSON body is still held, so the call keeps its replay.
func TestSmallBodyHeldPastTheBudget(t *testing.T) {
	data := []byte(`{"touser":"o1","msgtype":"text","text":{"content":"hi"}}`)
	r := httptest.NewRequest("POST", "/cgi-bin/message/custom/send", bytes.NewReader(data))
	before := replayMemory.Load()
	body, stream, err := readReplayable(r, 24<<20, 1)
	if err != nil || stream != nil || body == nil || body.size != int64(len(data)) {
		t.Fatalf("held %v, stream %v, err %v", body, stream != nil, err)
	}
	if got, _ := io.ReadAll(body.reader()); !bytes.Equal(got, data) {
		t.Errorf("held %q", got)
	}
	body.free()
	if replayMemory.Load() != before {
		t.Errorf("memory not given back")
	}
}
