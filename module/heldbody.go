package caddywechat

import (
	"io"
	"net/http"
	"sync/atomic"
)

// Part of stage 4: a request body held in memory, so that the call can be
// sent again after a token refresh.

// DefaultMaxReplayMemory is the default of App.MaxReplayMemory.
const DefaultMaxReplayMemory = 256 << 20

// replayMemory counts the request-body bytes every handler of the process
// holds for replay, against the app's max_replay_memory.
var replayMemory atomic.Int64

// Chunk sizes of a held body: a small first chunk for the small JSON bodies
// of most calls, larger ones for uploads.
const (
	firstChunk = 4 << 10
	nextChunk  = 64 << 10
)

// heldBody is a request body read into chunks as it arrives: it never
// grows on the client's word (Content-Length), and never copies what it
// holds to grow. Chunks are not pooled: a transport may still read a body
// after the handler returned, so only the garbage collector knows when a
// chunk is free.
type heldBody struct {
	chunks []*[]byte // full but for the last
	size   int64     // bytes held
	held   int64     // bytes reserved in replayMemory
}

// readReplayable reads the request body into memory if it is no larger
// than limit, and if the bytes all calls hold stay within budget (but for
// its first 4 KiB, which are held whatever the budget).
// Otherwise it returns, as stream, a reader that yields what was read and
// then the rest: such a call cannot be replayed. body is nil when there is
// no body; the caller calls body.free when the call is done, whatever err.
func readReplayable(r *http.Request, limit, budget int64) (body *heldBody, stream io.Reader, err error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, nil, nil
	}
	if r.ContentLength > limit {
		return nil, r.Body, nil
	}
	body = new(heldBody)
	for {
		last := body.last()
		if last == nil || len(*last) == cap(*last) {
			size := int64(nextChunk)
			if last == nil {
				size = firstChunk
			}
			if body.size > limit {
				return body, io.MultiReader(body.reader(), r.Body), nil
			}
			// The first chunk is held whatever the budget: the small JSON
			// body of most calls keeps its replay while uploads take the
			// rest; the excess is bounded by the calls in flight.
			if replayMemory.Add(size) > budget && last != nil {
				replayMemory.Add(-size)
				return body, io.MultiReader(body.reader(), r.Body), nil
			}
			body.held += size
			c := make([]byte, 0, size)
			last = &c
			body.chunks = append(body.chunks, last)
		}
		n, rerr := r.Body.Read((*last)[len(*last):cap(*last)])
		*last = (*last)[:len(*last)+n]
		body.size += int64(n)
		switch {
		case rerr == io.EOF && body.size > limit:
			return body, body.reader(), nil
		case rerr == io.EOF:
			return body, nil, nil
		case rerr != nil:
			return body, nil, rerr
		}
	}
}

// last returns the chunk being filled, or nil.
func (b *heldBody) last() *[]byte {
	if len(b.chunks) == 0 {
		return nil
	}
	return b.chunks[len(b.chunks)-1]
}

// reader returns a reader of the whole held body, from its start.
func (b *heldBody) reader() io.Reader {
	readers := make([]io.Reader, len(b.chunks))
	for i, c := range b.chunks {
		readers[i] = &chunkReader{b: *c}
	}
	return io.MultiReader(readers...)
}

// free gives the body's memory back to the budget when the call is done.
func (b *heldBody) free() {
	if b == nil {
		return
	}
	replayMemory.Add(-b.held)
	b.held = 0
}

// chunkReader reads one chunk.
type chunkReader struct{ b []byte }

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.b)
	c.b = c.b[n:]
	return n, nil
}
