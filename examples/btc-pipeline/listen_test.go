package main

import (
	"bufio"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tidemark-go/tidemark/examples/btc-pipeline/internal/btc"
)

// TestListenDefaults: every address a command listens on defaults to
// loopback or off, and the services a single-stage command connects to by
// default are local.
func TestListenDefaults(t *testing.T) {
	t.Setenv("TIDEMARK_BROKERS", "")
	t.Setenv("TIDEMARK_MONGO_URI", "")
	addrs := 0
	for cmd, own := range commands {
		o := &options{cmd: cmd, cfg: btc.DefaultConfig(), stderr: io.Discard}
		o.flags(own).VisitAll(func(f *flag.Flag) {
			if !strings.HasSuffix(f.Name, "-addr") || f.DefValue == "off" {
				return
			}
			addrs++
			host, _, err := net.SplitHostPort(f.DefValue)
			require.NoError(t, err, "%s --%s default %q", cmd, f.Name, f.DefValue)
			ip := net.ParseIP(host)
			assert.True(t, ip != nil && ip.IsLoopback(), "%s --%s defaults to %q: not a loopback address", cmd, f.Name, f.DefValue)
		})
	}
	assert.Equal(t, 3, addrs, "the defaults checked: all --ui-addr, all --metrics-addr, ui --ui-addr")

	s := (&options{}).connect()
	for _, b := range s.brokers {
		host, _, err := net.SplitHostPort(b)
		require.NoError(t, err, "broker %q", b)
		assert.True(t, net.ParseIP(host).IsLoopback(), "default broker %q", b)
	}
	u, err := url.Parse(s.mongoURI)
	require.NoError(t, err, "mongo URI")
	assert.True(t, net.ParseIP(u.Hostname()).IsLoopback(), "default MongoDB %q", s.mongoURI)
}

// TestListenersLoopback starts all and services as processes with their
// default listen hosts (the ports made free ones, as others may run on this
// machine) and checks in /proc that every socket they listen on, those of
// the embedded Kafka and MongoDB included, is bound to a loopback address.
func TestListenersLoopback(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the listening sockets from /proc")
	}
	if testing.Short() {
		t.Skip("starts the embedded services; not in -short")
	}
	// The default host of each address flag, with port 0.
	defaultHost := func(cmd, name string) string {
		o := &options{cmd: cmd, cfg: btc.DefaultConfig(), stderr: io.Discard}
		host, _, err := net.SplitHostPort(o.flags(commands[cmd]).Lookup(name).DefValue)
		require.NoError(t, err, "%s --%s", cmd, name)
		return net.JoinHostPort(host, "0")
	}
	for _, c := range []struct {
		name  string
		args  []string
		ready *regexp.Regexp
		min   int // listeners at least
	}{
		// The dashboard, the metrics, kfake, and MongoDB: the relay and
		// FerretDB behind it.
		{"all", []string{"all", "--source", "replay:testdata/btc-price.jsonl", "--view", "log", "--data-dir", filepath.Join(t.TempDir(), "data"),
			"--ui-addr", defaultHost("all", "ui-addr"), "--metrics-addr", defaultHost("all", "metrics-addr")}, regexp.MustCompile(`dashboard at http://`), 5},
		{"services", []string{"services", "--data-dir", filepath.Join(t.TempDir(), "data"), "--kafka-port", strconv.Itoa(freePort(t)),
			"--mongo-port", strconv.Itoa(freePort(t))}, regexp.MustCompile(`Embedded services are up`), 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &proc{name: c.name, args: c.args, log: &syncBuffer{}}
			p.start(t)
			defer p.stop(t)
			require.True(t, waitLog(p, c.ready, time.Minute), "%s is up; log:\n%s", c.name, p.log)
			p.mu.Lock()
			pid := p.cmd.Process.Pid
			p.mu.Unlock()
			listeners := listening(t, pid)
			t.Logf("%s listens on %v", c.name, listeners)
			assert.GreaterOrEqual(t, len(listeners), c.min, "listeners of %s", c.name)
			for _, a := range listeners {
				assert.True(t, a.IP.IsLoopback(), "%s listens on %v, not a loopback address", c.name, a)
			}
		})
	}
}

// waitLog waits until the process's log matches re.
func waitLog(p *proc, re *regexp.Regexp, d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if re.MatchString(p.log.String()) {
			return true
		}
		if done, _ := p.exited(); done {
			return false
		}
	}
	return false
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err, "free port")
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// listening returns the TCP addresses process pid listens on, from
// /proc/PID/net/tcp and tcp6 (every socket of its network namespace) and
// /proc/PID/fd (the socket inodes it holds).
func listening(t *testing.T, pid int) []*net.TCPAddr {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	require.NoError(t, err, "fds")
	inodes := map[string]bool{}
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []*net.TCPAddr
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		require.NoError(t, err, "socket table")
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] { // 0A: LISTEN
				continue
			}
			out = append(out, parseProcAddr(t, fields[1]))
		}
		require.NoError(t, sc.Err(), "socket table")
		f.Close()
	}
	return out
}

// parseProcAddr parses an address of /proc/net/tcp*: the IP in hex, as
// 32-bit words in host (little-endian) order, a colon, the port in hex.
func parseProcAddr(t *testing.T, s string) *net.TCPAddr {
	t.Helper()
	ipHex, portHex, ok := strings.Cut(s, ":")
	require.True(t, ok, "address %q", s)
	b, err := hex.DecodeString(ipHex)
	require.NoError(t, err, "address %q", s)
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	require.NoError(t, err, "address %q", s)
	return &net.TCPAddr{IP: net.IP(b), Port: int(port)}
}

// TestWarnExposed: a dashboard or metrics server bound beyond loopback is
// warned about, one on loopback is not.
func TestWarnExposed(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	warnExposed(log, "dashboard", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080})
	warnExposed(log, "metrics", &net.TCPAddr{IP: net.IPv6loopback, Port: 9464})
	assert.Empty(t, buf.String(), "loopback")
	warnExposed(log, "dashboard", &net.TCPAddr{IP: net.IPv6unspecified, Port: 8080})
	assert.Contains(t, buf.String(), `level=WARN msg="dashboard listens on [::]:8080, beyond this machine, without authentication`)
}
