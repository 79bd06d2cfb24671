//go:build unix

package dashboard

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
	"github.com/tidemark-go/tidemark/stream"
)

// smallWindow is a dialer whose sockets have a tiny receive buffer, so that
// a client that does not read stalls the server's writes at once instead
// of after megabytes of kernel buffers.
var smallWindow = &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	if err != nil {
		return err
	}
	return serr
}}

// smallSends is a listener whose connections have a tiny send buffer, so
// that the server feels a stuck client at once.
type smallSends struct{ net.Listener }

func (l smallSends) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// serveSmall is serve with smallSends.
func serveSmall(t *testing.T, h *Hub) *httptest.Server {
	srv := httptest.NewUnstartedServer(Handler(h))
	srv.Listener = smallSends{srv.Listener}
	srv.Start()
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return srv
}

// stuckClient opens the event stream and never reads it.
func stuckClient(t *testing.T, base string) net.Conn {
	u, err := url.Parse(base)
	require.NoError(t, err)
	conn, err := smallWindow.Dial("tcp", u.Host)
	require.NoError(t, err)
	_, err = conn.Write([]byte("GET /events HTTP/1.1\r\nHost: " + u.Host + "\r\n\r\n"))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// bulk returns a model of n price and n moving records of one symbol.
func bulk(n, windows int) model {
	m := model{}
	s := m.series("BTCUSDT")
	for i := range n {
		tm := stream.Time(1_746_677_558_352 + int64(i)*50)
		s[kPrice] = append(s[kPrice], point{tm, []float64{99_190.42 + float64(i%97)/100}})
		v := make([]float64, 3*windows)
		for w := range windows {
			v[w], v[windows+w], v[2*windows+w] = 99_190.123456789012+float64(w), 1.234567890123+float64(i%13), float64(300*(w+1))
		}
		s[kMoving] = append(s[kMoving], point{tm, v})
	}
	return m
}

// TestSlowClientDoesNotBlock connects a browser that never reads its event
// stream and checks that the records are added as fast as with an
// attentive browser only, that the hub drops the stuck browser's frames and
// then disconnects it, and that the attentive browser still gets every
// record.
func TestSlowClientDoesNotBlock(t *testing.T) {
	cfg := btc.DefaultConfig()
	n := len(cfg.Windows)
	const records = 20_000
	m := bulk(records, n)
	run := func(stuck bool) (time.Duration, *Hub, *sseClient) {
		h := NewHub(cfg, Options{Tick: 2 * time.Millisecond, ClientBuffer: 2, WriteTimeout: 300 * time.Millisecond})
		srv := serveSmall(t, h)
		good := dialSSE(t, srv.URL+"/events", 0)
		good.waitSeq(t, 0, 5*time.Second)
		if stuck {
			stuckClient(t, srv.URL)
			deadline := time.Now().Add(5 * time.Second)
			for h.Metrics().Clients < 2 {
				require.True(t, time.Now().Before(deadline), "the stuck client did not connect")
				time.Sleep(time.Millisecond)
			}
		}
		// In chunks, so that the broadcaster sends many frames.
		var took time.Duration
		const chunk = 1000
		for i := 0; i < records; i += chunk {
			start := time.Now()
			for j := i; j < i+chunk; j++ {
				addPoint(h, kPrice, "BTCUSDT", m["BTCUSDT"][kPrice][j], n)
				addPoint(h, kMoving, "BTCUSDT", m["BTCUSDT"][kMoving][j], n)
			}
			took += time.Since(start)
			time.Sleep(3 * time.Millisecond)
		}
		h.Flush()
		good.waitSeq(t, 2*records, 30*time.Second)
		requireSameModel(t, m, good.model())
		return took, h, good
	}
	base, _, _ := run(false)
	took, h, _ := run(true)
	t.Logf("adding %d records: %v with an attentive browser, %v with a stuck one too", 2*records, base, took)
	assert.Less(t, took, 3*base+500*time.Millisecond, "a stuck browser slowed Add down")

	deadline := time.Now().Add(20 * time.Second)
	for h.Metrics().Disconnects == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	mt := h.Metrics()
	t.Logf("hub metrics: %+v", mt)
	assert.Positive(t, mt.Dropped, "frames dropped for the stuck browser")
	assert.Equal(t, uint64(1), mt.Disconnects, "the stuck browser is disconnected")
	assert.Equal(t, 1, mt.Clients, "the attentive browser stays")
}

// TestSlowReaderResyncs reads the event stream slowly: the hub drops
// frames it cannot take, sends it a fresh snapshot instead, and the browser
// ends with every record all the same.
func TestSlowReaderResyncs(t *testing.T) {
	cfg := btc.DefaultConfig()
	n := len(cfg.Windows)
	m := bulk(20_000, n)
	h := NewHub(cfg, Options{Tick: time.Millisecond, ClientBuffer: 1, WriteTimeout: 30 * time.Second})
	srv := serve(t, h)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return smallWindow.DialContext(ctx, network, addr)
	}}}
	old := http.DefaultClient
	http.DefaultClient = client
	c := dialSSE(t, srv.URL+"/events", 20*time.Millisecond)
	http.DefaultClient = old
	c.waitSeq(t, 0, 5*time.Second)
	const chunk = 500
	for i := 0; i < 20_000; i += chunk {
		for j := i; j < i+chunk; j++ {
			addPoint(h, kPrice, "BTCUSDT", m["BTCUSDT"][kPrice][j], n)
			addPoint(h, kMoving, "BTCUSDT", m["BTCUSDT"][kMoving][j], n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	h.Flush()
	c.waitSeq(t, 40_000, 60*time.Second)
	requireSameModel(t, m, c.model())
	mt := h.Metrics()
	t.Logf("hub metrics: %+v", mt)
	assert.Positive(t, mt.Dropped)
	assert.Positive(t, mt.Resyncs)
	assert.Zero(t, mt.Disconnects)
	c.mu.Lock()
	defer c.mu.Unlock()
	assert.Greater(t, c.b.snapshots, 1, "snapshots after the first")
	assert.Zero(t, c.b.gaps, "the browser never sees a gap")
}
