package binancetest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"
)

func get(t *testing.T, u string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestServer(t *testing.T) {
	s := NewServer(nil)
	defer s.Close()
	base := s.URL + "/api/v3/ticker/price"

	code, h, body := get(t, base+"?symbol=BTCUSDT")
	if code != 200 || body != `{"symbol":"BTCUSDT","price":"99190.48000000"}` {
		t.Fatalf("one symbol: %d %s", code, body)
	}
	w1, _ := strconv.Atoi(h.Get("X-MBX-USED-WEIGHT-1M"))

	code, h, body = get(t, base+"?symbols="+url.QueryEscape(`["ETHUSDT","BTCUSDT"]`))
	var list []ticker
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 2 || list[0].Symbol != "ETHUSDT" {
		t.Fatalf("two symbols: %d %s", code, body)
	}
	w2, _ := strconv.Atoi(h.Get("X-MBX-USED-WEIGHT-1M"))
	if w2 != w1+4 && time.Now().Second() != 0 {
		t.Errorf("weight %d then %d, want +4", w1, w2)
	}

	if code, _, body = get(t, base+"?symbol=NOPE"); code != 400 || body != InvalidSymbolBody {
		t.Errorf("unknown symbol: %d %s", code, body)
	}
	if code, _, _ = get(t, base+"?symbol=BTCUSDT&symbols=%5B%5D"); code != 400 {
		t.Errorf("both parameters: %d", code)
	}

	s.SetExtraWeight(5000)
	s.Script(RateLimited("3"), Fault{Prices: map[string]string{"BTCUSDT": "1.5"}})
	code, h, body = get(t, base+"?symbol=BTCUSDT")
	if code != 429 || h.Get("Retry-After") != "3" || body != RateLimitBody {
		t.Errorf("scripted 429: %d %v %s", code, h, body)
	}
	if w, _ := strconv.Atoi(h.Get("X-MBX-USED-WEIGHT-1M")); w < 5000 {
		t.Errorf("extra weight not reported: %d", w)
	}
	if _, _, body = get(t, base+"?symbol=BTCUSDT"); body != `{"symbol":"BTCUSDT","price":"1.5"}` {
		t.Errorf("scripted price: %s", body)
	}
	if s.Pending() != 0 {
		t.Errorf("%d faults pending", s.Pending())
	}
	reqs := s.Requests()
	if len(reqs) != 6 || !reqs[4].Faulty || reqs[4].Status != 429 || reqs[2].Status != 400 {
		t.Errorf("requests: %+v", reqs)
	}
}
