package dashboard

// A minimal Chrome DevTools Protocol client for the browser tests: it starts
// headless Chromium, speaks CDP over a WebSocket (RFC 6455, client side,
// written here so that the tests need no new module), evaluates script in
// the page, and collects console errors, exceptions and network requests.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ------------------------------------------------------------ WebSocket

type wsConn struct {
	c   net.Conn
	br  *bufio.Reader
	wmu sync.Mutex
}

func dialWS(ctx context.Context, rawURL string) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	keyBytes := make([]byte, 16)
	_, _ = rand.Read(keyBytes)
	key := base64.StdEncoding.EncodeToString(keyBytes)
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(c, 1<<16)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(h[:]) {
		c.Close()
		return nil, fmt.Errorf("websocket handshake: %s", resp.Status)
	}
	return &wsConn{c: c, br: br}, nil
}

// write sends one masked frame.
func (w *wsConn) write(opcode byte, payload []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	hdr := []byte{0x80 | opcode}
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n < 1<<16:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	hdr = append(hdr, mask[:]...)
	masked := make([]byte, len(payload))
	for i, b := range payload {
		masked[i] = b ^ mask[i%4]
	}
	_, err := w.c.Write(append(hdr, masked...))
	return err
}

// read returns the next text or binary message, answering pings.
func (w *wsConn) read() ([]byte, error) {
	var msg []byte
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.br, h[:]); err != nil {
			return nil, err
		}
		fin, opcode := h[0]&0x80 != 0, h[0]&0x0f
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(w.br, b[:]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(w.br, b[:]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		var mask [4]byte
		if h[1]&0x80 != 0 {
			if _, err := io.ReadFull(w.br, mask[:]); err != nil {
				return nil, err
			}
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(w.br, payload); err != nil {
			return nil, err
		}
		if h[1]&0x80 != 0 {
			for i := range payload {
				payload[i] ^= mask[i%4]
			}
		}
		switch opcode {
		case 0x8:
			return nil, io.EOF
		case 0x9:
			if err := w.write(0xA, payload); err != nil {
				return nil, err
			}
			continue
		case 0xA:
			continue
		}
		msg = append(msg, payload...)
		if fin {
			return msg, nil
		}
	}
}

// ------------------------------------------------------------ CDP

type cdpMessage struct {
	ID     int64           `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// cdpPage is a CDP session on one page.
type cdpPage struct {
	ws      *wsConn
	next    atomic.Int64
	mu      sync.Mutex
	pending map[int64]chan cdpMessage
	// Collected from the events.
	problems []string // console errors, exceptions, failed loads
	requests []string // URLs the page asked for
	done     chan struct{}
}

func (p *cdpPage) loop() {
	defer close(p.done)
	for {
		b, err := p.ws.read()
		if err != nil {
			p.mu.Lock()
			for id, ch := range p.pending {
				close(ch)
				delete(p.pending, id)
			}
			p.mu.Unlock()
			return
		}
		var m cdpMessage
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		if m.ID != 0 {
			p.mu.Lock()
			ch := p.pending[m.ID]
			delete(p.pending, m.ID)
			p.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		p.event(m)
	}
}

func (p *cdpPage) event(m cdpMessage) {
	note := func(s string) {
		p.mu.Lock()
		p.problems = append(p.problems, s)
		p.mu.Unlock()
	}
	switch m.Method {
	case "Runtime.exceptionThrown":
		var e struct {
			Details struct {
				Text      string `json:"text"`
				URL       string `json:"url"`
				Line      int    `json:"lineNumber"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		_ = json.Unmarshal(m.Params, &e)
		note(fmt.Sprintf("exception: %s %s (line %d)", e.Details.Text, e.Details.Exception.Description, e.Details.Line))
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		_ = json.Unmarshal(m.Params, &e)
		if e.Type == "error" || e.Type == "assert" {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, fmt.Sprint(a.Value, a.Description))
			}
			note("console." + e.Type + ": " + strings.Join(parts, " "))
		}
	case "Log.entryAdded":
		var e struct {
			Entry struct {
				Level  string `json:"level"`
				Source string `json:"source"`
				Text   string `json:"text"`
				URL    string `json:"url"`
			} `json:"entry"`
		}
		_ = json.Unmarshal(m.Params, &e)
		if e.Entry.Level == "error" {
			note(fmt.Sprintf("log (%s): %s %s", e.Entry.Source, e.Entry.Text, e.Entry.URL))
		}
	case "Network.requestWillBeSent":
		var e struct {
			Request struct {
				URL string `json:"url"`
			} `json:"request"`
		}
		_ = json.Unmarshal(m.Params, &e)
		p.mu.Lock()
		p.requests = append(p.requests, e.Request.URL)
		p.mu.Unlock()
	case "Network.loadingFailed":
		var e struct {
			ErrorText string `json:"errorText"`
			Canceled  bool   `json:"canceled"`
		}
		_ = json.Unmarshal(m.Params, &e)
		if !e.Canceled {
			note("network: loading failed: " + e.ErrorText)
		}
	}
}

// call sends a command and decodes its result into res (if not nil).
func (p *cdpPage) call(ctx context.Context, method string, params, res any) error {
	id := p.next.Add(1)
	ch := make(chan cdpMessage, 1)
	p.mu.Lock()
	p.pending[id] = ch
	p.mu.Unlock()
	if params == nil {
		params = struct{}{}
	}
	ps, err := json.Marshal(params)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(cdpMessage{ID: id, Method: method, Params: ps})
	if err := p.ws.write(0x1, b); err != nil {
		return err
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return errors.New("cdp: connection closed")
		}
		if m.Error != nil {
			return fmt.Errorf("cdp %s: %s", method, m.Error.Message)
		}
		if res != nil {
			return json.Unmarshal(m.Result, res)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cdp %s: %w", method, ctx.Err())
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) and decodes
// its JSON value into res.
func (p *cdpPage) eval(ctx context.Context, expr string, res any) error {
	var r struct {
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	if err := p.call(ctx, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r); err != nil {
		return err
	}
	if r.Exception != nil {
		return fmt.Errorf("evaluate %q: %s %s", expr, r.Exception.Text, r.Exception.Exception.Description)
	}
	if res == nil {
		return nil
	}
	if len(r.Result.Value) == 0 {
		return fmt.Errorf("evaluate %q: no value (%s)", expr, r.Result.Type)
	}
	return json.Unmarshal(r.Result.Value, res)
}

// waitTrue evaluates cond until it is true.
func (p *cdpPage) waitTrue(ctx context.Context, cond string) error {
	for {
		var ok bool
		err := p.eval(ctx, "!!("+cond+")", &ok)
		if err == nil && ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("waiting for %s: %w (last: %v)", cond, ctx.Err(), err)
			}
			return fmt.Errorf("waiting for %s: %w", cond, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *cdpPage) collected() (problems, requests []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.problems...), append([]string(nil), p.requests...)
}

// screenshot saves a PNG of the whole page.
func (p *cdpPage) screenshot(ctx context.Context, path string) error {
	var lm struct {
		Content struct {
			Width  float64 `json:"width"`
			Height float64 `json:"height"`
		} `json:"cssContentSize"`
	}
	if err := p.call(ctx, "Page.getLayoutMetrics", nil, &lm); err != nil {
		return err
	}
	var shot struct {
		Data string `json:"data"`
	}
	if err := p.call(ctx, "Page.captureScreenshot", map[string]any{
		"format": "png", "captureBeyondViewport": true,
		"clip": map[string]any{"x": 0, "y": 0, "width": lm.Content.Width, "height": lm.Content.Height, "scale": 1},
	}, &shot); err != nil {
		return err
	}
	b, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

var devtoolsRE = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// chromium starts headless Chromium (TIDEMARK_CHROMIUM; the test skips
// without it) and returns a CDP session on its page, with the Runtime, Log
// and Page domains enabled, closed when the test ends.
func chromium(t *testing.T, ctx context.Context, extraArgs ...string) *cdpPage {
	t.Helper()
	bin := os.Getenv("TIDEMARK_CHROMIUM")
	if bin == "" {
		t.Skip("browser test: set TIDEMARK_CHROMIUM to a Chromium binary (bash scripts/browser/chromium.sh installs Debian's chromium and prints it)")
	}
	// Not t.TempDir: the browser's helper processes may still write there
	// for a moment after it is gone, which fails TempDir's cleanup.
	profile, err := os.MkdirTemp("", "tidemark-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--no-default-browser-check", "--disable-extensions", "--disable-background-networking", "--disable-sync",
		"--disable-component-update", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
		"--window-size=1400,1000", "--remote-debugging-port=0", "--remote-allow-origins=*",
		"--user-data-dir=" + profile,
	}, extraArgs...)
	args = append(args, "about:blank")
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	var logMu sync.Mutex
	var browserLog bytes.Buffer
	wsURL := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			logMu.Lock()
			browserLog.WriteString(line + "\n")
			logMu.Unlock()
			if m := devtoolsRE.FindStringSubmatch(line); m != nil {
				select {
				case wsURL <- m[1]:
				default:
				}
			}
		}
	}()
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	var browserWS string
	t.Cleanup(func() {
		// Close the browser the polite way, so that it ends its helper
		// processes; kill it if it does not.
		if browserWS != "" {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if ws, err := dialWS(ctx, browserWS); err == nil {
				_ = ws.write(0x1, []byte(`{"id":1,"method":"Browser.close"}`))
				ws.c.Close()
			}
			cancel()
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		for i := 0; i < 50; i++ {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("could not remove the browser profile %s", profile)
	})
	select {
	case browserWS = <-wsURL:
	case <-time.After(30 * time.Second):
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("Chromium did not start its DevTools server in 30 s:\n%s", browserLog.String())
	}
	// The page target's own WebSocket.
	u, _ := url.Parse(browserWS)
	var targets []struct {
		Type string `json:"type"`
		WS   string `json:"webSocketDebuggerUrl"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + u.Host + "/json/list")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
		}
		found := false
		for _, tg := range targets {
			found = found || tg.Type == "page"
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no page target: %v %+v", err, targets)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var pageWS string
	for _, tg := range targets {
		if tg.Type == "page" {
			pageWS = tg.WS
			break
		}
	}
	ws, err := dialWS(ctx, pageWS)
	if err != nil {
		t.Fatalf("connect to the page: %v", err)
	}
	p := &cdpPage{ws: ws, pending: make(map[int64]chan cdpMessage), done: make(chan struct{})}
	go p.loop()
	t.Cleanup(func() {
		ws.c.Close()
		<-p.done
	})
	for _, domain := range []string{"Runtime.enable", "Log.enable", "Page.enable", "Network.enable"} {
		if err := p.call(ctx, domain, nil, nil); err != nil {
			t.Fatalf("%s: %v", domain, err)
		}
	}
	return p
}

// navigate loads url in the page and waits for its load event.
func (p *cdpPage) navigate(ctx context.Context, url string) error {
	var r struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.call(ctx, "Page.navigate", map[string]any{"url": url}, &r); err != nil {
		return err
	}
	if r.ErrorText != "" {
		return fmt.Errorf("navigate %s: %s", url, r.ErrorText)
	}
	return p.waitTrue(ctx, `document.readyState === "complete"`)
}
