package dashboard

import (
	"errors"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/tidemark-go/tidemark/stream"
)

// heartbeat is how often an idle event stream gets an SSE comment, so that
// proxies and the browser keep the connection.
const heartbeat = 15 * time.Second

// writeChunk is the largest piece of an event written under one deadline.
const writeChunk = 64 << 10

// Handler serves the dashboard of h:
//
//	GET /              the page (self-contained: chart library, CSS and script inline)
//	GET /events        Server-Sent Events: a snapshot, then one delta per tick
//	GET /api/snapshot  the snapshot as JSON; ?from=&to= (Unix ms or RFC 3339)
//	                   keep the points in that event-time range, ?max=N at most
//	                   N points per series (every k-th)
//
// The paths are relative, so the handler may be mounted under a prefix with
// http.StripPrefix.
func Handler(h *Hub) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		page, err := livePage()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Security-Policy", csp)
		w.Write(page)
	})
	mux.HandleFunc("GET /events", h.serveEvents)
	mux.HandleFunc("GET /api/snapshot", func(w http.ResponseWriter, r *http.Request) {
		from, to, err := timeRange(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		maxPoints := 0
		if s := r.URL.Query().Get("max"); s != "" {
			if maxPoints, err = strconv.Atoi(s); err != nil || maxPoints < 0 {
				http.Error(w, "max: want a count", http.StatusBadRequest)
				return
			}
		}
		b, _ := h.snapshot(from, to, maxPoints)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(b)
	})
	return mux
}

// csp forbids the page any network access but to its own server: the
// chart library is inline and nothing is loaded from elsewhere.
const csp = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:"

// timeRange parses the from and to parameters (missing: unbounded).
func timeRange(r *http.Request) (stream.Time, stream.Time, error) {
	parse := func(name string, def stream.Time) (stream.Time, error) {
		s := r.URL.Query().Get(name)
		if s == "" {
			return def, nil
		}
		if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
			return stream.Time(ms), nil
		}
		if t, err := stream.ParseTime([]byte(s)); err == nil {
			return t, nil
		}
		return 0, errors.New(name + ": want Unix milliseconds or an RFC 3339 time")
	}
	from, err := parse("from", stream.MinTime)
	if err != nil {
		return 0, 0, err
	}
	to, err := parse("to", stream.MaxTime)
	return from, to, err
}

// serveEvents streams the hub to one browser: a snapshot, then every tick's
// delta. The browser's frames wait in a small queue; when the broadcaster
// finds it full it drops the frame, and this handler, seeing the gap in the
// sequence, sends a fresh snapshot instead. A write that stalls longer than
// Options.WriteTimeout ends the stream.
func (h *Hub) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	c := &client{ch: make(chan *frame, h.opt.ClientBuffer), wake: make(chan struct{}, 1)}
	h.cmu.Lock()
	select {
	case <-h.done:
		h.cmu.Unlock()
		return
	default:
	}
	h.clients[c] = struct{}{}
	h.cmu.Unlock()
	defer func() {
		h.cmu.Lock()
		delete(h.clients, c)
		h.cmu.Unlock()
	}()

	// write writes b in pieces, each with its own deadline: a browser is
	// disconnected when it takes no piece for WriteTimeout, however large
	// b is.
	write := func(b []byte) bool {
		var err error
		for len(b) > 0 && err == nil {
			n := min(len(b), writeChunk)
			_ = rc.SetWriteDeadline(time.Now().Add(h.opt.WriteTimeout))
			if _, err = w.Write(b[:n]); err == nil {
				err = rc.Flush()
			}
			b = b[n:]
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				h.disconnects.Add(1)
			}
			return false
		}
		return true
	}
	var lastStep uint64 // the broadcaster's step the browser is at
	sendSnapshot := func() (uint64, bool) {
		data, seq, step := h.snapshotStep(stream.MinTime, stream.MaxTime, 0)
		lastStep = step
		b := make([]byte, 0, len(data)+64)
		b = append(b, "retry: 2000\nevent: snapshot\nid: "...)
		b = strconv.AppendUint(b, seq, 10)
		b = append(b, "\ndata: "...)
		b = append(b, data...)
		b = append(b, "\n\n"...)
		return seq, write(b)
	}
	last, ok := sendSnapshot()
	if !ok {
		return
	}
	resync := func() bool {
		c.missed.Store(false)
		h.resyncs.Add(1)
		last, ok = sendSnapshot()
		return ok
	}
	beat := time.NewTicker(heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case f, ok := <-c.ch:
			if !ok {
				return // the hub closed
			}
			switch {
			case f.step <= lastStep:
				// Already in the snapshot.
			case f.from != last:
				// Frames were dropped: start again from a snapshot.
				if !resync() {
					return
				}
			default:
				if !write(f.data) {
					return
				}
				last, lastStep = f.to, f.step
			}
		case <-c.wake:
			// The broadcaster dropped a frame: the browser gets a snapshot
			// now, even if no frame follows.
			if c.missed.Load() && !resync() {
				return
			}
		case <-beat.C:
			if !write([]byte(": ping\n\n")) {
				return
			}
		}
	}
}
